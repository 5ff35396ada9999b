// The manager: a host that composes eci's parts and owns their lifetimes. The bus and the event
// publisher, the allocator, one actor per container (their records in KV), the vetting feed, the
// FUSE servers, restore after a restart, and the unix socket the eci-runc launcher talks to each
// live in their own module; this file wires them and starts and stops them in order.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { connectBus, ensureStreams, type Bus } from '../bus/connect.ts';
import { observerCredentialsPath } from '../bus/auth.ts';
import type { OutgoingEvent, Publish } from '../bus/events.ts';
import { subjects } from '../bus/subjects.ts';
import type { AllocationResult, ContainerStateName } from '../statecharts/events.ts';
import type { ContainerContext } from '../statecharts/container.machine.ts';
import { AllocatorActor, purgeRangeKey } from './allocator.actor.ts';
import { ContainerActor } from './container.actor.ts';
import type { ManagerConfig } from './config.ts';
import { EciError } from './errors.ts';
import { FdHolder, type FdHolderNative } from './fd-holder.ts';
import { NotifyFeed, type FeedNative } from './notify-feed.ts';
import { runcStateDir } from './runc/cli.ts';
import { procStat, runcInitPid } from './runc/state.ts';
import type { RootfsNative } from './rootfs.ts';
import { RuntimeSession, type RuntimeHost } from './runtime.ts';
import { StartGate } from './start-gate.ts';
import { actorServices, type ActorServices } from './services.ts';
import type { Settings } from './settings.ts';
import { assertStateSpace } from './state-space.ts';
import { SysctlReconciler } from './sysctl/reconciler.actor.ts';
import { busSysctlClient, servedEntries } from './sysctl/fs.ts';
import { TestPause } from './test-pause.ts';
import { setkeyPath } from '../native/launcher.ts';
import { VetterActor } from './vetter.actor.ts';
import { ContainerMounts, openRunDir, type MountPlan } from './manager/container-mounts.ts';
import { logBusStatus } from './manager/bus-status.ts';
import { ControlServer, type RunCalls } from './manager/control-server.ts';
import { EmulatedFiles } from './manager/emulated-files.ts';
import { HostNamespaces } from './manager/host-ns.ts';
import { EventPublisher, type EventSink } from './manager/publisher.ts';
import { ContainerRecords } from './manager/records.ts';
import { restoreContainers, resumeContainers, type RecoveryDeps } from './manager/recovery.ts';
import { InnerData, type InnerDataDir } from './manager/inner-data.ts';
import { auditStreamLimits, SettingsWatch } from './manager/settings-watch.ts';
import { lockDirs, type ManagerLock } from './manager/lock.ts';
import { SubidGuard } from './manager/subid.ts';
import { rangeProblem } from './manager/range-check.ts';
import { ContainerTable, type ContainerView } from './manager/table.ts';
import { namespaceOwner, type JoinCandidate } from './manager/group-ns.ts';
import type { GroupRange } from './manager/groups.ts';
import { statStartTime, type StoredRecord } from './restore.ts';

export type { MountPlan } from './manager/container-mounts.ts';
export type { ContainerView } from './manager/table.ts';

export const VERSION = '0.1.0';
const RECONCILE_MS = 30_000;

/** What the manager needs of the native side. */
export type ManagerNative = RootfsNative & FeedNative & Partial<FdHolderNative> & {
  bindInto(pid: number, source: string, target: string): Promise<void>;
  setDomainname?(pid: number, name: string): Promise<void>;
  bindIntoMany?(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void>;
  /** The mountinfo line of one mount (statmount); absent or null: the manager reads the whole table. */
  mountInfoAt?(path: string): string | null;
};

export class Manager implements RuntimeHost, EventSink {
  private readonly table = new ContainerTable();
  readonly containers = this.table.actors;
  allocator!: AllocatorActor;
  /** Groups whose range is decided and its KV write still in flight: resolves to a reason it failed, or undefined. */
  private recording = new Map<string, Promise<string | undefined>>();
  bus!: Bus;
  private timer?: NodeJS.Timeout;
  private hostNs?: HostNamespaces;
  private pause!: TestPause;
  private settingsWatch: SettingsWatch;
  private events?: EventPublisher;
  private readonly records: ContainerRecords;
  private readonly mounts: ContainerMounts;
  private readonly files: EmulatedFiles;
  private readonly server: ControlServer;
  private readonly inner: InnerData;
  private vetter?: VetterActor;
  private services?: ActorServices;
  private feed?: NotifyFeed;
  private sysctl?: SysctlReconciler;
  /** Keeps the containers' notify fds across a manager restart (absent when the native side lacks it). */
  private holder?: FdHolder;
  /** Hand-overs of notify fds to the fd-holder under way, by container. */
  private readonly holding = new Map<string, Promise<void>>();
  private lock?: ManagerLock;
  private subids?: SubidGuard;

  /** `run`: `eci run`'s sessions, handed in by the host (bin/eci.ts), since the manager does not import cli/. */
  constructor(readonly config: ManagerConfig, readonly log: Logger, private native: ManagerNative, o: { run?: () => RunCalls } = {}) {
    this.settingsWatch = new SettingsWatch(config.settingsPath, this, log, () => this.onSettingsChanged());
    this.records = new ContainerRecords(() => this.bus.containers, log);
    this.mounts = new ContainerMounts(config.runDir, native, () => this.pause, (id) => this.settledFor(id), log);
    this.files = new EmulatedFiles(config.runDir, native, this, log);
    this.inner = new InnerData(config.stateDir);
    this.server = new ControlServer(config.socket, { session: (answer) => new RuntimeSession(this, answer), control: (b) => this.control(b), run: o.run }, log);
    this.setkeyHook = this.findSetkey();
  }

  procfsDir(id: string): string | undefined {
    return this.files.procfsDir(id);
  }

  /** Container `id`'s emulated /proc/sys and /sys files (its view): FUSE file name and absolute target. */
  sysctlFiles(id: string): { dir: string; files: { file: string; target: string }[] } | undefined {
    return this.files.sysctlFiles(id);
  }

  /** The emulated files a new proc or sysfs mount made inside container `id` gets (paths relative to it). */
  emulatedMountFiles(fstype: string, id: string): { source: string; rel: string }[] {
    return this.files.mountFiles(fstype, id);
  }

  bindInto(pid: number, source: string, target: string): Promise<void> {
    return this.native.bindInto(pid, source, target);
  }

  /** Many bindInto in one helper run (one by one where the native side lacks it). */
  async bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void> {
    if (this.native.bindIntoMany) return this.native.bindIntoMany(pid, pairs);
    for (const p of pairs) await this.native.bindInto(pid, p.source, p.target);
  }

  setDomainname(pid: number, name: string): Promise<void> {
    return this.native.setDomainname ? this.native.setDomainname(pid, name) : Promise.reject(new Error('setDomainname is not available'));
  }

  initPid(id: string): number | undefined {
    return this.table.initPid(id);
  }

  get nativeStart(): boolean {
    return this.config.nativeStart;
  }

  /**
   * eci-setkey, when the config asks for it (the default) and it is built: Docker's libnetwork-setkey
   * hook then costs ~1 ms instead of a second start of dockerd. Missing, Docker's own hook runs (warned once, at start).
   */
  readonly setkeyHook: string | undefined;

  private findSetkey(): string | undefined {
    if (this.config.setkeyHook !== 'eci') return undefined;
    const path = setkeyPath();
    if (existsSync(path)) return path;
    this.log.warn({ path }, "eci-setkey is not built (npm run build): Docker's libnetwork-setkey hook runs dockerd's own");
    return undefined;
  }

  /** Where runc hands over seccomp notify fds (linux.seccomp.listenerPath). */
  seccompSocket(): string {
    return join(this.config.runDir, 'seccomp.sock');
  }

  get runc(): string {
    return this.config.runc;
  }

  settings(): Settings {
    return this.settingsWatch.settings();
  }

  /** New audit-trail limits apply to the stream at once (JetStream's store ceiling at the server's next start). */
  private async onSettingsChanged(): Promise<void> {
    if (this.bus) await ensureStreams(this.bus.jsm, auditStreamLimits(this.settings())).catch((e) => this.log.warn({ err: (e as Error).message }, 'cannot apply the audit trail limits to the stream'));
  }

  /** eci's own state is restricted, wherever the environment put it. */
  ownPaths(): string[] {
    return [this.config.stateDir, this.config.runDir, this.config.settingsPath];
  }

  async start(): Promise<void> {
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(join(this.config.runDir, 'containers'), { recursive: true, mode: 0o711 });
    // Before anything is touched: a second manager would take the socket and fight over host sysctls.
    this.lock = lockDirs([this.config.stateDir, this.config.runDir]);
    await this.startLocked().catch((e) => { this.lock?.release(); throw e; });
  }

  private async startLocked(): Promise<void> {
    // JetStream cannot even open its consumers on a full disk: say so instead of failing halfway.
    assertStateSpace(this.config.stateDir, 'the manager cannot start; free space there and start it again');
    openRunDir(this.config.runDir);
    this.hostNs = new HostNamespaces();
    this.pause = TestPause.fromEnv(process.env, this.config.stateDir);
    if (this.pause.active) this.log.warn({ point: this.pause.active }, 'test hook ECI_TEST_PAUSE_AT is set: the manager will stop there');
    await this.settingsWatch.start();
    // The pool goes into /etc/subuid and /etc/subgid before any of it is handed out (refused if a user overlaps it).
    this.subids = new SubidGuard(this.config.range ?? this.settings().idRange);
    this.subids.reserve();
    // Events are written to the outbox before they are published: none is lost while the bus is down.
    this.events = new EventPublisher(this.config.stateDir, this.log);
    this.bus = await connectBus({
      url: this.config.natsUrl, stateDir: this.config.stateDir, port: this.config.natsPort, name: 'eci-manager',
      onStatus: (st) => logBusStatus(st, { log: this.log, url: () => this.bus?.url, kick: () => this.events?.kick(), publish: this.publish }),
      auth: this.config.natsAuth,
      observer: { file: observerCredentialsPath(this.config.runDir), group: this.config.group },
      limits: auditStreamLimits(this.settings()),
    });
    const left = this.events.attach(this.bus);
    if (left) this.log.info({ events: left }, 'publishing events kept from an earlier run');
    // Each actor gets a connection that counts its endpoints for the $SRV protocol (eci services).
    this.services = actorServices(this.bus.nc, VERSION, { pid: String(process.pid) });
    this.allocator = new AllocatorActor(this.config.range ?? this.settings().idRange, {
      nc: this.services.allocator.connection(), kv: this.bus.ranges, log: this.log,
      publish: this.publish, forget: purgeRangeKey(this.bus.jsm),
    });
    await this.allocator.start();
    this.vetter = new VetterActor(this.services.vetter.connection());
    this.vetter.start();
    this.feed = this.notifyFeed(this.vetter);
    if (this.native.connectFdHolder && this.native.launchFdHolder && this.native.closeFd) {
      this.holder = new FdHolder({
        socket: join(this.config.runDir, 'fdholder.sock'), pidFile: join(this.config.runDir, 'fdholder.pid'),
        native: this.native as FdHolderNative, log: this.log.child({ actor: 'fd-holder' }),
      });
      await this.holder.open();
    }
    this.feed.start(this.seccompSocket());
    await this.files.mountProcFs();
    // The sysctl reconciler: per-container values of non-namespaced entries, host = max of the live.
    this.sysctl = new SysctlReconciler({
      kv: this.bus.sysctl, nc: this.services.sysctl.connection(), publish: this.publish, log: this.log.child({ actor: 'sysctl' }),
      isLive: (id) => this.table.get(id) !== undefined,
      ceilings: () => this.settings().sysctlCeilings,
    });
    await this.sysctl.start();
    await this.files.mountSysctlFs({ client: busSysctlClient(this.bus.nc), keys: servedEntries(this.sysctl.reconciled()), kv: this.bus.sysctl });
    const recovery = this.recoveryDeps();
    await restoreContainers(recovery);
    await this.files.restoreValues(this.table.ids());
    await resumeContainers(recovery, this.holder, this.feed);
    this.sysctl.retainOnly(this.table.ids()); // values of containers gone while we were down no longer count
    const swept = this.inner.sweep(new Set(this.table.ids()));
    if (swept.length) this.log.info({ ids: swept }, 'removed inner engine data of containers gone while the manager was down');
    await this.server.listen();
    this.timer = setInterval(() => void this.reconcile(), RECONCILE_MS);
    this.timer.unref();
    await this.publish(subjects.managerEvent('started'), 'manager.started', { pid: process.pid, version: VERSION, nats: this.bus.url });
    this.log.info({ socket: this.config.socket, nats: this.bus.url, range: this.allocator.config, settings: this.config.settingsPath }, 'eci manager ready');
  }

  async stop(o?: { stopServer?: boolean }): Promise<void> {
    this.records.stop();
    this.allocator?.stopRetrying();
    if (this.timer) clearInterval(this.timer);
    this.settingsWatch.stop();
    await this.server.close();
    await this.records.settled();
    await this.allocator?.settled();
    await this.feed?.flushAudit(); // the decisions made so far come before 'stopping'
    await this.publish(subjects.managerEvent('stopping'), 'manager.stopping', { pid: process.pid, version: VERSION, nats: this.bus.url }).catch(() => {});
    await this.feed?.stop();
    this.holder?.close(); // it keeps the fds for the next manager, and exits once it holds none
    await this.files.stop();
    this.sysctl?.stop();
    this.vetter?.stop();
    this.allocator?.stop();
    this.services?.stop();
    for (const c of this.table.all()) c.actor.stop();
    await this.events?.close();
    await this.bus?.close({ stopServer: o?.stopServer ?? true });
    this.lock?.release();
  }

  /** Publishes one event through the outbox (see EventPublisher.publish). */
  publish: Publish = (subject, type, data) => this.publishMany([{ subject, type, data } as OutgoingEvent]);

  /** Publishes events as one outbox batch (see EventPublisher.publishMany). */
  async publishMany(events: OutgoingEvent[]): Promise<void> {
    return this.events?.publishMany(events);
  }

  /** Creating needs the bus (records, events, the range's KV write): without it, refuse before doing anything. */
  private assertBusUp(): void {
    if (!this.bus?.up()) {
      throw new EciError('EBUSDOWN', `the event bus (NATS at ${this.bus?.url ?? 'unknown'}) is down: refusing to create a container until it is back`);
    }
  }

  isHostNamespace = (type: string, path: string): boolean => this.hostNs!.has(type, path);
  mountInfoAt = (path: string): string | null => this.native.mountInfoAt?.(path) ?? null;
  readonly startGate = new StartGate();

  /**
   * The live container whose `type` namespace is at `path`: a member of a group with its range, in
   * mounted or running state, whose init is known. Its user namespace must not be the host's (a pid
   * reused by a host process since): fail closed.
   */
  namespaceOwner = (type: string, path: string): JoinCandidate | undefined => {
    const groups = this.table.groups;
    const candidates: JoinCandidate[] = [];
    for (const c of this.table.all()) {
      const group = groups.groupOf(c.id);
      if ((c.state !== 'mounted' && c.state !== 'running') || !group || !groups.range(group)) continue;
      const pid = this.table.initPid(c.id) ?? runcInitPid(c.runcRoot, c.id);
      if (pid) candidates.push({ id: c.id, group, pid });
    }
    const o = namespaceOwner(type, path, candidates);
    if (o && this.hostNs!.has('user', `/proc/${o.pid}/ns/user`)) {
      throw new EciError('EJOINNS', `the ${type} namespace ${path} is container ${o.id}'s, but its init ${o.pid} is in the host's user namespace: refusing to join it`);
    }
    return o;
  };
  container(id: string): ContainerActor | undefined {
    return this.table.get(id);
  }

  setVolumePaths(id: string, paths: string[]): void {
    this.table.setVolumePaths(id, paths);
  }

  /**
   * `o.join`: a live container whose group (user namespace and range) the new one joins; `o.restore`:
   * the record of a container picked up after a restart (its group comes back with it).
   */
  createContainer(id: string, bundle: string, runcRoot: string | undefined, plan: MountPlan, o: { join?: string; restore?: StoredRecord } = {}): ContainerActor {
    const restore = o.restore;
    if (!restore) {
      this.assertBusUp();
      this.subids?.check(); // a user given ids in the pool since the start (usermod -v) stops every create
      assertStateSpace(this.config.stateDir);
    }
    this.joinGroup(id, o);
    const c = new ContainerActor(id, bundle, {
      // In-process: a create never waits on a bus round trip to ourselves (issue 18). The allocator
      // persists each decision to KV before it answers, and a release waits for the bus if it is down.
      requestRange: (owner) => this.requestRange(owner),
      // After its write: a release never overtakes the record of the range it frees.
      freeRange: async (owner) => { await this.rangeRecorded(owner); this.leaveGroup(owner); },
      mountRootfs: (cid, uid, gid) => this.mounts.mount(cid, plan, uid, gid),
      unmountRootfs: (cid, mounts) => this.mounts.unmount(cid, mounts),
      removeRunDir: (cid, left) => this.mounts.removeRunDir(cid, left),
      transition: (state, from, ctx) => this.onTransition(c, state, from, ctx),
      record: (state, ctx) => this.records.put(id, this.table.recordOf(c, state, ctx)),
    }, { runcRoot, created: restore?.created, restore });
    c.viewTarget = restore ? restore.hostView : plan.rootfs.kind === 'overlay' ? plan.rootfs.engine : undefined;
    this.table.add(c);
    c.released.then(() => {
      const t = performance.now();
      if (c.releaseError) this.log.error({ id, err: c.releaseError.message }, 'container release stopped short: its run dir is kept');
      this.leaveGroup(id); // a container that failed before it had a range
      this.table.remove(c);
      this.feed?.forget(id);
      void this.holder?.release(id); // queued after its hold
      this.files.unregister(id);
      this.sysctl?.gone(id);
      this.vetter?.forget(id);
      this.records.remove(id);
      try {
        this.inner.remove(id);
      } catch (e) {
        this.log.warn({ id, err: (e as Error).message }, 'cannot remove inner engine data (swept at the next start)');
      }
      // ms from the release's start: mounts down (the engine's answer), range freed, run dir removed; then the records here.
      this.log.debug({ id, phases: { ...c.releaseTimes, forgotten: +(performance.now() - t).toFixed(2) } }, 'container released');
    });
    return c.start();
  }

  /** Puts a new or restored container in its group: the joined container's, its record's, or a new one. */
  private joinGroup(id: string, o: { join?: string; restore?: StoredRecord }): void {
    const groups = this.table.groups;
    if (o.restore) {
      const ctx = o.restore.context;
      const range: GroupRange | undefined = ctx.index !== undefined && ctx.uid && ctx.gid ? { index: ctx.index, uid: ctx.uid, gid: ctx.gid } : undefined;
      groups.join(o.restore.group ?? id, id, range);
      return;
    }
    if (o.join) {
      const key = groups.groupOf(o.join);
      // Gone since the spec was checked (removed meanwhile): nothing is created.
      if (!key || !groups.range(key)) throw new EciError('EJOINNS', `container ${o.join} is gone: cannot join its namespaces`);
      groups.join(key, id);
      this.log.info({ id, group: key, members: groups.count(key) }, 'container joins a group');
      return;
    }
    groups.join(groups.keyFor(id), id);
  }

  /** A container leaves its group; the group's range is freed with its last member. Idempotent. */
  private leaveGroup(id: string): void {
    const left = this.table.groups.leave(id);
    if (left?.last && left.range) this.freeGroupRange(left.key);
    else if (left && !left.last) this.log.info({ id, group: left.key, members: this.table.groups.count(left.key) }, 'container leaves its group; the range stays with the others');
  }

  /** Frees a group's range; one decided but still being written is freed once the write is over (the allocator frees only what it holds). */
  private freeGroupRange(key: string): void {
    const writing = this.recording.get(key);
    if (writing) void writing.then(() => this.allocator.free(key));
    else this.allocator.free(key);
  }

  /** The group's range: allocated for its first member, the same for the others. */
  private async requestRange(owner: string): Promise<AllocationResult> {
    const groups = this.table.groups;
    const key = groups.groupOf(owner);
    if (key === undefined) return { ok: false, owner, code: 'EBADRANGE', reason: 'the container is in no group' };
    const shared = groups.range(key);
    if (shared) return { ok: true, owner, ...shared };
    const t = performance.now();
    const inFlight = this.allocator.inFlight();
    // The decision, not its KV write, is what the rootfs needs: the write lands meanwhile, and the
    // create waits for it before runc runs (rangeRecorded), so nothing runs with an unrecorded range.
    const { decided, recorded } = this.allocator.allocateEarly(key);
    const r = await decided;
    if (r.ok) {
      const confirmed = recorded.then((f): string | undefined => {
        if (f.ok && f.index === r.index) return undefined;
        return f.ok ? `the range at index ${r.index} was taken by another holder while it was being recorded` : f.reason;
      });
      this.recording.set(key, confirmed);
      void confirmed.then(() => { if (this.recording.get(key) === confirmed) this.recording.delete(key); });
    }
    this.log.debug({ id: owner, ms: +(performance.now() - t).toFixed(2), inFlight }, 'range allocated');
    if (!r.ok) return { ...r, owner };
    if (groups.groupOf(owner) !== key) {
      // The container went away while the range was being written: nobody holds the range.
      if (!groups.live(key)) this.freeGroupRange(key);
      return { ...r, owner };
    }
    // Checked where it is applied, whatever decided it: inside the pool, whole, and no other group's.
    const bad = rangeProblem(r, this.allocator.config, [...this.table.all()].filter((c) => groups.groupOf(c.id) !== key).map((c) => c.context.uid));
    if (!bad) {
      groups.setRange(key, { index: r.index, uid: r.uid, gid: r.gid });
      return { ...r, owner };
    }
    this.log.error({ id: owner, uid: r.uid, problem: bad }, 'refusing a range');
    this.freeGroupRange(key);
    return { ok: false, owner, code: 'EBADRANGE', reason: `refusing range: ${bad}` };
  }

  /**
   * Resolves once the range of `id`'s group is recorded in KV: undefined, or why it cannot be used
   * (a failed write, a foreign holder). A joined or restored range is recorded already.
   */
  async rangeRecorded(id: string): Promise<string | undefined> {
    const key = this.table.groups.groupOf(id);
    const writing = key === undefined ? undefined : this.recording.get(key);
    return writing ? await writing : undefined;
  }

  containerDir(id: string): string {
    return this.mounts.containerDir(id);
  }

  innerDataDirs(id: string, names: readonly string[]): InnerDataDir[] {
    return this.inner.make(id, names);
  }

  rootfsTarget(id: string): string {
    return this.mounts.rootfsTarget(id);
  }

  /** Resolves when this container's record/event writes and the allocator's KV writes so far have landed. */
  private async settledFor(id: string): Promise<void> {
    await this.records.settledFor(id);
    await this.allocator.settled();
  }

  private onTransition(c: ContainerActor, state: ContainerStateName, from: ContainerStateName | undefined, ctx: ContainerContext): void {
    // Every step of every container at info was a sync log write per transition on the create path;
    // the bus event below carries the same. A failure stays at info: it is what an operator looks for.
    this.log[state === 'failed' ? 'info' : 'debug']({ id: c.id, state, from, uid: ctx.uid?.hostID, reason: ctx.reason }, `container ${state}`);
    const data = { container: c.id, state, from, uid: ctx.uid, gid: ctx.gid, rootfs: ctx.rootfs, bundle: ctx.bundle, reason: ctx.reason, group: this.table.groups.groupOf(c.id) };
    const record = this.table.recordOf(c, state, ctx);
    this.records.transition(c.id, () => this.publish(subjects.containerEvent(c.id, state), `container.${state}`, data), record);
  }

  /** The seccomp agent side: notify fds from runc, verdicts from the vetter, the emulated files for new mounts. */
  private notifyFeed(vetter: VetterActor): NotifyFeed {
    return new NotifyFeed({
      log: this.log, nc: this.bus.nc,
      publish: this.publish,
      publishMany: (events) => this.publishMany(events),
      auditLimits: () => this.settings().auditTrail,
      vet: (req) => vetter.vet(req),
      charge: (id) => vetter.charge(id),
      protectedPaths: (id) => this.table.get(id)?.protectedPaths,
      notifyFdReceived: (id, fd) => this.holdNotifyFd(id, fd),
      containerProcess: (id, pid) => {
        const c = this.table.get(id);
        if (c && !this.table.initPid(id)) {
          const stat = procStat(pid);
          this.table.setInitPid(id, pid, stat === undefined ? undefined : statStartTime(stat));
          this.records.put(id, this.table.recordOf(c, c.state, c.context), { once: true });
        }
        // runc's first connection comes from the container's init: its pid namespace is the container's.
        if (!this.table.has(id)) return;
        try {
          this.files.register(id, pid);
        } catch (e) {
          this.log.debug({ id, err: (e as Error).message }, 'procfs register');
        }
      },
      volumePaths: (id) => this.table.volumePaths(id),
      ranges: (id) => ({ uid: this.table.get(id)?.context.uid, gid: this.table.get(id)?.context.gid }),
      emulatedProcFiles: (id) => this.files.procFiles(id),
      emulatedMountFiles: (fstype, id) => this.emulatedMountFiles(fstype, id),
      bindInto: (pid, source, target) => this.bindInto(pid, source, target),
      bindIntoMany: (pid, pairs) => this.bindIntoMany(pid, pairs),
    }, this.native);
  }

  /**
   * A copy of each notify fd goes to the fd-holder (off the event loop: create's answer waits for it in
   * notifyFdHeld); a holder that went away is replaced.
   */
  private holdNotifyFd(id: string, fd: number): void {
    const holder = this.holder;
    if (!holder) return;
    const held = (holder.connected ? holder.hold(id, fd) : Promise.resolve(false)).then((ok) => {
      if (!ok && !holder.connected) void holder.recover(() => this.feed?.watched() ?? []);
    });
    this.holding.set(id, held);
    void held.finally(() => { if (this.holding.get(id) === held) this.holding.delete(id); });
  }

  /** Resolves once the fd-holder has answered for container id's notify fd (at once when none is under way). */
  async notifyFdHeld(id: string): Promise<void> {
    await this.holding.get(id);
  }

  private recoveryDeps(): RecoveryDeps {
    return {
      records: this.bus.containers, allocator: this.allocator, events: this, table: this.table, files: this.files,
      native: this.native, runDir: this.config.runDir, log: this.log,
      removeRootfs: (id, mounts) => this.mounts.remove(id, mounts),
      mountView: (id, engine, uid, gid) => this.mounts.mountView(id, engine, uid, gid),
      revive: (id, rec) => {
        const c = this.createContainer(id, rec.context.bundle, rec.runcRoot, { rootfs: { kind: 'bind', source: '' }, binds: [] }, { restore: rec });
        c.protectedPaths = rec.protectedPaths ?? [];
        if (rec.volumePaths) this.table.setVolumePaths(id, rec.volumePaths);
      },
    };
  }

  /** Containers whose runc state vanished (deleted while a report was lost) are cleaned up. */
  async reconcile(): Promise<void> {
    for (const c of this.table.all()) {
      if ((c.state === 'mounted' || c.state === 'running') && !existsSync(runcStateDir(c.runcRoot, c.id))) {
        // Give an in-flight create a moment: only containers older than the interval are swept.
        if (Date.now() - Date.parse(c.created) < RECONCILE_MS) continue;
        // Fail closed: while its init still runs, its range and mounts stay its own, whatever runc's
        // state dir says (a range freed under a live container could be handed to another one).
        if (this.table.initRunning(c.id, procStat)) {
          if (!this.keptRunning.has(c)) this.log.warn({ id: c.id, pid: this.table.initPid(c.id) }, 'runc no longer knows this container, but its init still runs: it keeps its range and mounts');
          this.keptRunning.add(c);
          continue;
        }
        c.send({ type: 'delete' });
      }
    }
  }

  /** Containers reconcile() found without runc state but still running (warned about once). */
  private readonly keptRunning = new WeakSet<ContainerActor>();

  list(): ContainerView[] {
    return this.table.list();
  }

  private async control(body: unknown): Promise<unknown> {
    const op = (body as { op?: string })?.op;
    if (op === 'ping') return { ok: true, pid: process.pid, version: VERSION, nats: this.bus.url };
    if (op === 'ps') {
      // A delete is answered once the mounts are down; the rest of its release is ms behind: a listing
      // waits for it, so that it shows no container half gone.
      await Promise.all([...this.table.all()].filter((c) => c.isUnmounted).map((c) => c.released));
      return { ok: true, containers: this.list(), ranges: this.allocator.held() };
    }
    return { ok: false, error: `unknown control op ${JSON.stringify(op)}` };
  }
}

