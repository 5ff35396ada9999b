// The manager: one NATS bus, the allocator actor, one actor per container, and the unix socket the
// eci-runc launcher talks to. Container state survives restarts in KV; events go to JetStream.
import { chmodSync, closeSync, existsSync, openSync, mkdirSync, readFileSync, rmSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { FdHolder, type FdHolderNative } from './fd-holder.ts';
import { initPidOf, type RuncInitState, type StoredRecord } from './restore.ts';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { connectBus, ensureStreams, type Bus, type StreamLimits } from '../bus/connect.ts';
import { observerCredentialsPath } from '../bus/auth.ts';
import { envelope } from '../bus/events.ts';
import { Outbox, type OutboxEntry } from '../bus/outbox.ts';
import { retryUntilDone } from '../bus/retry.ts';
import { sweepOrphans } from './reconcile.ts';
import { TestPause } from './test-pause.ts';
import { assertStateSpace } from './state-space.ts';
import type { BusStatus } from '../bus/connect.ts';
import { subjects } from '../bus/subjects.ts';
import { actorServices, type ActorServices } from './services.ts';
import type { AllocationResult, ContainerStateName, IdRange, MountRef } from '../statecharts/events.ts';
import type { ContainerContext } from '../statecharts/container.machine.ts';
import { AllocatorActor } from './allocator.actor.ts';
import { ContainerActor, type ContainerRecord } from './container.actor.ts';
import type { ManagerConfig } from './config.ts';
import { DEFAULT_SETTINGS, parseSettings, type Settings } from './settings.ts';
import { EciError } from './errors.ts';
import { runcStateDir } from './runc/cli.ts';
import { mountBinds, mountRootfs, unmountRootfs, type BindPlan, type RootfsNative, type RootfsPlan } from './rootfs.ts';
import { EMULATED_PROC_FILES, RuntimeSession, type RuntimeHost } from './runtime.ts';
import { NotifyFeed, type FeedNative } from './notify-feed.ts';
import { VetterActor } from './vetter.actor.ts';
import { ProcFs } from './procfs/server.ts';
import { SysctlReconciler } from './sysctl/reconciler.actor.ts';
import { busSysctlClient, servedEntries, SysctlFs } from './sysctl/fs.ts';
import { encodeReply, FrameDecoder } from './shim-protocol.ts';

export const VERSION = '0.1.0';

/** What to mount for a container: its rootfs and its idmapped binds. */
export interface MountPlan { rootfs: RootfsPlan; binds: BindPlan[] }
const RECONCILE_MS = 30_000;

export interface ContainerView {
  id: string;
  state: ContainerStateName;
  uid?: IdRange;
  gid?: IdRange;
  rootfs?: string;
  bundle: string;
  created: string;
  reason?: string;
}

/**
 * Container root (an unmapped host uid) must be able to walk down to its rootfs under the run dir:
 * every directory on the way needs the search bit for others.
 */
export function checkTraversable(dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if (!(mode & 0o001)) {
      throw new EciError('ECONFIG', `${d} (mode ${(mode & 0o777).toString(8)}) must be searchable by others (o+x): container rootfs mounts live under ${dir}`);
    }
    if (d === '/') return;
  }
}

export class Manager implements RuntimeHost {
  readonly containers = new Map<string, ContainerActor>();
  private chains = new Map<string, Promise<void>>();
  private server?: Server;
  private timer?: NodeJS.Timeout;
  private hostNs = new Set<string>();
  allocator!: AllocatorActor;
  bus!: Bus;
  private current: Settings = DEFAULT_SETTINGS;
  private settingsText?: string;
  private outbox?: Outbox;
  private stopping = false;
  private pause!: TestPause;

  private vetter?: VetterActor;
  private services?: ActorServices;
  private feed?: NotifyFeed;
  private procfs?: ProcFs;
  private procfsMounted = false;
  private sysctl?: SysctlReconciler;
  private sysctlFs?: SysctlFs;
  private sysctlMounted = false;

  /** Keeps the containers' notify fds across a manager restart (absent when the native side lacks it). */
  private holder?: FdHolder;
  /** Host pid of each container's init (from runc's agent connection, or restored). */
  private initPids = new Map<string, number>();

  constructor(readonly config: ManagerConfig, readonly log: Logger, private native: RootfsNative & FeedNative & Partial<FdHolderNative> & { bindInto(pid: number, source: string, target: string): Promise<void>; setDomainname?(pid: number, name: string): Promise<void>; bindIntoMany?(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void> }) {}

  procfsDir(): string | undefined {
    return this.procfsMounted ? join(this.config.runDir, 'procfs') : undefined;
  }

  /** Emulated /proc/sys and /sys files (actors/sysctl/keys.ts): FUSE file name and absolute target. */
  sysctlFiles(): { dir: string; files: { file: string; target: string }[] } | undefined {
    if (!this.sysctlMounted || !this.sysctlFs) return undefined;
    return { dir: join(this.config.runDir, 'sysctlfs'), files: this.sysctlFs.served().map((k) => ({ file: k.file, target: k.target })) };
  }

  /** The emulated files a new proc or sysfs mount made inside a container gets (paths relative to it). */
  emulatedMountFiles(fstype: string): { source: string; rel: string }[] {
    const s = this.sysctlFiles();
    const prefix = fstype === 'proc' ? '/proc/' : fstype === 'sysfs' ? '/sys/' : undefined;
    if (!s || !prefix) return [];
    return s.files.filter((f) => f.target.startsWith(prefix)).map((f) => ({ source: join(s.dir, f.file), rel: f.target.slice(prefix.length) }));
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

  /** Where runc hands over seccomp notify fds (linux.seccomp.listenerPath). */
  seccompSocket(): string {
    return join(this.config.runDir, 'seccomp.sock');
  }

  get runc(): string {
    return this.config.runc;
  }

  settings(): Settings {
    return this.current;
  }

  /** eci's own state is restricted, wherever the environment put it. */
  ownPaths(): string[] {
    return [this.config.stateDir, this.config.runDir, this.config.settingsPath];
  }

  /**
   * Loads the settings file; on a change, publishes the new settings, and on a bad file keeps the
   * settings in force and publishes the rejection (field and reason).
   */
  private streamLimits(): StreamLimits {
    const a = this.current.auditTrail;
    return { maxBytes: a.maxBytes, maxAgeS: a.maxAgeDays * 24 * 3600 };
  }

  private async reloadSettings(initial = false): Promise<void> {
    let text: string | undefined;
    let next: Settings;
    try {
      try {
        text = readFileSync(this.config.settingsPath, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') throw new EciError('ESETTINGS', `${this.config.settingsPath}: cannot read (${code})`);
      }
      if (text === this.settingsText && !initial) return;
      this.settingsText = text;
      next = text === undefined ? DEFAULT_SETTINGS : parseSettings(text, this.config.settingsPath);
    } catch (e) {
      if (initial) throw e;
      this.log.error({ path: this.config.settingsPath, err: (e as Error).message }, 'settings rejected; the previous settings stay in force');
      await this.publish(subjects.settingsEvent('rejected'), 'settings.rejected', { path: this.config.settingsPath, error: (e as Error).message });
      return;
    }
    this.current = next;
    if (initial) return;
    this.log.info({ path: this.config.settingsPath }, 'settings reloaded');
    // New audit-trail limits apply to the stream at once (JetStream's store ceiling at the server's next start).
    if (this.bus) await ensureStreams(this.bus.jsm, this.streamLimits()).catch((e) => this.log.warn({ err: (e as Error).message }, 'cannot apply the audit trail limits to the stream'));
    await this.publish(subjects.settingsEvent('changed'), 'settings.changed', { path: this.config.settingsPath, settings: next });
  }

  async start(): Promise<void> {
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(join(this.config.runDir, 'containers'), { recursive: true, mode: 0o711 });
    // JetStream cannot even open its consumers on a full disk: say so instead of failing halfway.
    assertStateSpace(this.config.stateDir, 'the manager cannot start; free space there and start it again');
    // eci owns these two: make sure container root can pass through (the mode of an existing dir is kept by mkdir).
    chmodSync(this.config.runDir, 0o711);
    chmodSync(join(this.config.runDir, 'containers'), 0o711);
    checkTraversable(join(this.config.runDir, 'containers'));
    // "The host" is where the manager runs, and where pid 1 runs (they differ inside sandboxes).
    for (const t of ['pid', 'ipc', 'uts', 'mnt', 'net', 'user', 'cgroup']) {
      for (const who of ['self', '1']) {
        try {
          const s = statSync(`/proc/${who}/ns/${t}`);
          this.hostNs.add(`${t}:${s.dev}:${s.ino}`);
        } catch { /* namespace type not supported by this kernel */ }
      }
    }
    this.pause = TestPause.fromEnv(process.env, this.config.stateDir);
    if (this.pause.active) this.log.warn({ point: this.pause.active }, 'test hook ECI_TEST_PAUSE_AT is set: the manager will stop there');
    await this.reloadSettings(true);
    watchFile(this.config.settingsPath, { interval: 500 }, () => void this.reloadSettings());
    // Events are written to the outbox before they are published: none is lost while the bus is down.
    this.outbox = new Outbox(join(this.config.stateDir, 'outbox'), (e) => this.sendEvent(e), this.log.child({ part: 'outbox' }));
    this.bus = await connectBus({
      url: this.config.natsUrl, stateDir: this.config.stateDir, port: this.config.natsPort, name: 'eci-manager',
      onStatus: (st) => this.onBusStatus(st),
      auth: this.config.natsAuth,
      observer: { file: observerCredentialsPath(this.config.runDir), group: this.config.group },
      limits: this.streamLimits(),
    });
    const left = this.outbox.load();
    if (left) this.log.info({ events: left }, 'publishing events kept from an earlier run');
    // Each actor gets a connection that counts its endpoints for the $SRV protocol (eci services).
    this.services = actorServices(this.bus.nc, VERSION, { pid: String(process.pid) });
    this.allocator = new AllocatorActor(this.config.range ?? this.current.idRange, {
      nc: this.services.allocator.connection(), kv: this.bus.ranges, log: this.log,
      publish: (subject, type, data) => this.publish(subject, type, data),
    });
    await this.allocator.start();
    this.vetter = new VetterActor(this.services.vetter.connection());
    this.vetter.start();
    this.feed = new NotifyFeed({
      log: this.log, nc: this.bus.nc,
      publish: (subject, type, data) => this.publish(subject, type, data),
      publishMany: (events) => this.publishMany(events),
      auditLimits: () => this.current.auditTrail,
      vet: (req) => this.vetter!.vet(req),
      protectedPaths: (id) => this.containers.get(id)?.protectedPaths,
      notifyFdReceived: (id, fd) => this.holdNotifyFd(id, fd),
      containerProcess: (id, pid) => {
        const c = this.containers.get(id);
        if (c && !this.initPids.has(id)) {
          this.initPids.set(id, pid);
          this.chain(id, () => this.bus.containers.put(id, JSON.stringify(this.recordOf(c, c.state, c.context))));
        }
        // runc's first connection comes from the container's init: its pid namespace is the container's.
        if (!this.procfsMounted || !this.containers.has(id)) return;
        try {
          this.procfs?.register(id, pid);
          this.sysctlFs?.register(id, pid);
        } catch (e) {
          this.log.debug({ id, err: (e as Error).message }, 'procfs register');
        }
      },
      volumePaths: (id) => { const c = this.containers.get(id); return c && this.volumePaths.get(c); },
      ranges: (id) => ({ uid: this.containers.get(id)?.context.uid, gid: this.containers.get(id)?.context.gid }),
      emulatedProcFiles: () => (this.procfsMounted ? { dir: join(this.config.runDir, 'procfs'), files: EMULATED_PROC_FILES } : undefined),
      emulatedMountFiles: (fstype) => this.emulatedMountFiles(fstype),
      bindInto: (pid, source, target) => this.bindInto(pid, source, target),
      bindIntoMany: (pid, pairs) => this.bindIntoMany(pid, pairs),
    }, this.native);
    if (this.native.connectFdHolder && this.native.fdHolderPath && this.native.closeFd) {
      this.holder = new FdHolder({
        socket: join(this.config.runDir, 'fdholder.sock'), pidFile: join(this.config.runDir, 'fdholder.pid'),
        native: this.native as FdHolderNative, log: this.log.child({ actor: 'fd-holder' }),
      });
      await this.holder.open();
    }
    this.feed.start(this.seccompSocket());
    // /proc emulation is an addition, not a guard: without FUSE containers run with the kernel's files.
    try {
      const dir = join(this.config.runDir, 'procfs');
      // A manager that was killed leaves its FUSE mount behind, dead (ENOTCONN even for mkdir's
      // stat): detach it first.
      try { this.native.unmount(dir, { detach: true }); } catch { /* nothing was mounted */ }
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      this.procfs = new ProcFs();
      await this.procfs.start(dir);
      this.procfsMounted = true;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, '/proc emulation unavailable; containers see the kernel files');
    }
    // The sysctl reconciler: per-container values of non-namespaced entries, host = max of the live.
    this.sysctl = new SysctlReconciler({ kv: this.bus.sysctl, nc: this.services.sysctl.connection(), publish: (s, t, d) => this.publish(s, t, d), log: this.log.child({ actor: 'sysctl' }) });
    await this.sysctl.start();
    if (this.procfsMounted) {
      try {
        const dir = join(this.config.runDir, 'sysctlfs');
        try { this.native.unmount(dir, { detach: true }); } catch { /* nothing was mounted */ }
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        this.sysctlFs = new SysctlFs({ client: busSysctlClient(this.bus.nc), keys: servedEntries(this.sysctl.reconciled()), kv: this.bus.sysctl });
        await this.sysctlFs.start(dir);
        this.sysctlMounted = true;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'per-container sysctl files unavailable');
      }
    }
    await this.restoreContainers();
    await this.sysctlFs?.restore(this.containers.keys()).catch((e) => this.log.warn({ err: (e as Error).message }, 'per-container sysctl values not restored'));
    await this.resumeContainers();
    this.sysctl.retainOnly(this.containers.keys()); // values of containers gone while we were down no longer count
    await this.listen();
    this.timer = setInterval(() => void this.reconcile(), RECONCILE_MS);
    this.timer.unref();
    await this.publish(subjects.managerEvent('started'), 'manager.started', { pid: process.pid, version: VERSION, nats: this.bus.url });
    this.log.info({ socket: this.config.socket, nats: this.bus.url, range: this.allocator.config, settings: this.config.settingsPath }, 'eci manager ready');
  }

  async stop(o?: { stopServer?: boolean }): Promise<void> {
    this.stopping = true;
    this.allocator?.stopRetrying();
    if (this.timer) clearInterval(this.timer);
    unwatchFile(this.config.settingsPath);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.config.socket, { force: true });
    await Promise.all([...this.chains.values()]);
    await this.allocator?.settled();
    await this.feed?.flushAudit(); // the decisions made so far come before 'stopping'
    await this.publish(subjects.managerEvent('stopping'), 'manager.stopping', { pid: process.pid, version: VERSION, nats: this.bus.url }).catch(() => {});
    await this.feed?.stop();
    this.holder?.close(); // it keeps the fds for the next manager, and exits once it holds none
    await this.procfs?.stop().catch(() => {});
    await this.sysctlFs?.stop().catch(() => {});
    this.sysctl?.stop();
    this.vetter?.stop();
    this.allocator?.stop();
    this.services?.stop();
    for (const c of this.containers.values()) c.actor.stop();
    await this.outbox?.close();
    await this.bus?.close({ stopServer: o?.stopServer ?? true });
  }

  /**
   * Publishes one event through the outbox: resolves once JetStream has it, or once it is kept for
   * later while the bus is down. The ulid is the message id, so a retry is not a duplicate.
   */
  async publish(subject: string, type: string, data: unknown): Promise<void> {
    return this.publishMany([{ subject, type, data }]);
  }

  /** Publishes events as one outbox batch (one file; see Outbox.addMany); resolves as publish does. */
  async publishMany(events: { subject: string; type: string; data: unknown }[]): Promise<void> {
    try {
      await this.outbox!.addMany(events.map((ev) => {
        const env = envelope(ev.type, ev.data);
        return { subject: ev.subject, id: env.id, payload: JSON.stringify(env) };
      }));
    } catch (e) {
      this.log.error({ err: e, subject: events[0]?.subject, type: events[0]?.type, events: events.length }, 'cannot publish event');
    }
  }

  private async sendEvent(e: OutboxEntry): Promise<void> {
    if (!this.bus?.up()) throw new Error('bus disconnected');
    await this.bus.js.publish(e.subject, e.payload, { msgID: e.id, timeout: 2000 });
  }

  private onBusStatus(st: BusStatus): void {
    if (st.type === 'disconnected') this.log.warn({ nats: this.bus?.url }, 'NATS disconnected: creates are refused until it is back');
    else if (st.type === 'reconnected') {
      this.log.info({ nats: this.bus?.url }, 'NATS reconnected');
      this.outbox?.kick();
    } else if (st.type === 'server-restarted') {
      this.log.warn({ oldPid: st.oldPid, pid: st.pid }, 'embedded nats-server died; restarted it');
      void this.publish(subjects.managerEvent('nats-restarted'), 'manager.nats-restarted', { pid: process.pid, oldNatsPid: st.oldPid, natsPid: st.pid });
    } else if (st.type === 'warning') this.log.warn(st.message);
    else if (st.type === 'consumers-swept') this.log.warn({ consumers: st.names }, 'deleted consumers on the event stream that would never expire (not made by eci)');
    else this.log.error({ err: st.error }, 'cannot restart the embedded nats-server; retrying');
  }

  /** Creating needs the bus (range allocation, records, events): without it, refuse before doing anything. */
  private assertBusUp(): void {
    if (!this.bus?.up()) {
      throw new EciError('EBUSDOWN', `the event bus (NATS at ${this.bus?.url ?? 'unknown'}) is down: refusing to create a container until it is back`);
    }
  }

  isHostNamespace = (type: string, path: string): boolean => {
    const t = type === 'network' ? 'net' : type === 'mount' ? 'mnt' : type;
    let s;
    try {
      s = statSync(path);
    } catch (e) {
      // Fail closed: a namespace eci cannot identify might be the host's.
      throw new EciError('EHOSTNS', `cannot check the ${type} namespace ${path} (${(e as NodeJS.ErrnoException).code}): refusing to join it`);
    }
    return this.hostNs.has(`${t}:${s.dev}:${s.ino}`);
  };

  container(id: string): ContainerActor | undefined {
    return this.containers.get(id);
  }

  /** Volumes per container actor (runtime.ts sets them with protectedPaths; gone with the actor). */
  private readonly volumePaths = new WeakMap<ContainerActor, string[]>();
  setVolumePaths(id: string, paths: string[]): void {
    const c = this.containers.get(id);
    if (c) this.volumePaths.set(c, paths);
  }

  createContainer(id: string, bundle: string, runcRoot: string | undefined, plan: MountPlan, restore?: ContainerRecord): ContainerActor {
    if (!restore) {
      this.assertBusUp();
      assertStateSpace(this.config.stateDir);
    }
    const c = new ContainerActor(id, bundle, {
      requestRange: (owner) => this.requestRange(owner),
      freeRange: async (owner) => {
        // Bus down: the allocator is in this process; its KV write waits for the bus.
        if (!this.bus.up()) return this.allocator.free(owner);
        await this.bus.nc.request(subjects.allocatorFree, JSON.stringify({ owner }), { timeout: 5000 }).catch((e) => {
          this.log.error({ err: e, owner }, 'cannot free range over the bus; freeing directly');
          this.allocator.free(owner);
        });
      },
      mountRootfs: async (cid, uid, gid) => {
        await this.pause.at('create.after-range', cid, () => this.settledFor(cid));
        const target = this.rootfsTarget(cid);
        mkdirSync(target, { recursive: true, mode: 0o711 });
        let mounts: MountRef[] = [];
        const t = performance.now();
        try {
          mounts = await mountRootfs(this.native, plan.rootfs, target, uid, gid);
          this.log.debug({ id: cid, ms: +(performance.now() - t).toFixed(2) }, 'rootfs mounted');
          if (plan.binds.length) mkdirSync(join(this.containerDir(cid), 'binds'), { mode: 0o711 });
          mounts.push(...mountBinds(this.native, plan.binds, uid, gid));
          await this.pause.at('create.after-rootfs', cid, () => this.settledFor(cid));
          return { path: target, mounts };
        } catch (e) {
          unmountRootfs(this.native, mounts);
          // Whatever is still mounted on our own fresh rootfs dir is ours: take it down too.
          for (let i = 0; i < 8 && this.native.isMountpoint(target); i++) this.native.unmount(target, { detach: true });
          try {
            rmSync(this.containerDir(cid), { recursive: true, force: true });
          } catch (rmErr) {
            this.log.error({ err: rmErr, id: cid }, 'cannot remove the run dir of a failed container');
          }
          throw e;
        }
      },
      unmountRootfs: async (cid, mounts) => {
        await this.pause.at('delete.before-unmount', cid, () => this.settledFor(cid));
        this.removeRootfs(cid, mounts);
        await this.pause.at('delete.after-unmount', cid, () => this.settledFor(cid));
      },
      transition: (state, from, ctx) => this.onTransition(c, state, from, ctx),
    }, { runcRoot, created: restore?.created, restore });
    this.containers.set(id, c);
    c.released.then(() => {
      if (this.containers.get(id) === c) this.containers.delete(id);
      this.feed?.forget(id);
      this.initPids.delete(id);
      this.holder?.drop(id);
      this.procfs?.unregister(id);
      this.sysctlFs?.unregister(id);
      this.sysctl?.gone(id);
      this.vetter?.forget(id);
      this.chain(id, () => this.kvWrite(id, () => this.bus.containers.delete(id)));
    });
    return c.start();
  }

  private async requestRange(owner: string): Promise<AllocationResult> {
    const t = performance.now();
    const m = await this.bus.nc.request(subjects.allocatorAllocate, JSON.stringify({ owner }), { timeout: 5000 });
    this.log.debug({ id: owner, ms: +(performance.now() - t).toFixed(2) }, 'range request answered');
    return m.json<AllocationResult>();
  }

  containerDir(id: string): string {
    return join(this.config.runDir, 'containers', id);
  }

  rootfsTarget(id: string): string {
    return join(this.containerDir(id), 'rootfs');
  }

  /** Unmounts what eci mounted for a container and removes its run dir (kept if a mount is stuck). */
  private removeRootfs(id: string, mounts: MountRef[] | undefined): void {
    const left = unmountRootfs(this.native, mounts ?? []);
    if (left.length) {
      this.log.error({ id, left }, 'cannot unmount rootfs mounts');
      return;
    }
    if (this.native.isMountpoint(this.rootfsTarget(id))) {
      this.log.warn({ id }, 'a mount not made by eci remains on the rootfs path; leaving it');
      return;
    }
    rmSync(this.containerDir(id), { recursive: true, force: true });
  }

  /** Resolves when this container's record/event writes and the allocator's KV writes so far have landed. */
  private async settledFor(id: string): Promise<void> {
    await this.chains.get(id);
    await this.allocator.settled();
  }

  private chain(id: string, f: () => Promise<unknown>): void {
    const next = (this.chains.get(id) ?? Promise.resolve()).then(f).then(() => {}, (e) => this.log.error({ err: e, id }, 'bus write failed'));
    this.chains.set(id, next);
    next.then(() => { if (this.chains.get(id) === next) this.chains.delete(id); });
  }

  private onTransition(c: ContainerActor, state: ContainerStateName, from: ContainerStateName | undefined, ctx: ContainerContext): void {
    this.log.info({ id: c.id, state, from, uid: ctx.uid?.hostID, reason: ctx.reason }, `container ${state}`);
    const data = { container: c.id, state, from, uid: ctx.uid, gid: ctx.gid, rootfs: ctx.rootfs, bundle: ctx.bundle, reason: ctx.reason };
    const record = this.recordOf(c, state, ctx);
    this.chain(c.id, async () => {
      await this.publish(subjects.containerEvent(c.id, state), `container.${state}`, data);
      await this.kvWrite(c.id, () => this.bus.containers.put(c.id, JSON.stringify(record)));
    });
  }

  /** A container-record write that must land: retried through a bus outage (not past a stop). */
  private kvWrite(id: string, f: () => Promise<unknown>): Promise<unknown> {
    return retryUntilDone(f, {
      cancelled: () => this.stopping,
      onFirstFailure: (e) => this.log.warn({ id, err: (e as Error).message }, 'container record not written yet; retrying until the bus is back'),
    });
  }

  /** The KV record of a container: its machine state plus what a restarted manager needs. */
  private recordOf(c: ContainerActor, state: ContainerStateName, ctx: ContainerContext): StoredRecord {
    return {
      state, context: ctx, runcRoot: c.runcRoot, created: c.created,
      initPid: this.initPids.get(c.id), protectedPaths: c.protectedPaths, volumePaths: this.volumePaths.get(c),
    };
  }

  /** A copy of each notify fd goes to the fd-holder; a holder that went away is replaced. */
  private holdNotifyFd(id: string, fd: number): void {
    if (!this.holder) return;
    if (this.holder.connected && this.holder.put(id, fd)) return;
    if (!this.holder.connected) void this.holder.recover(() => this.feed?.watched() ?? []);
  }

  /**
   * After restoreContainers: the restored containers get their emulated /proc files back and their
   * vetting resumes from the notify fds the fd-holder kept (the calls they made meanwhile are queued
   * in the kernel and answered now). A container whose init cannot be identified is not resumed: its
   * fds are closed, and its vetted calls fail with ENOSYS as without a holder (fail closed).
   */
  private async resumeContainers(): Promise<void> {
    for (const c of this.containers.values()) {
      const pid = this.initPids.get(c.id);
      if (pid) await this.reattachEmulatedFiles(c.id, pid);
    }
    if (!this.holder?.connected) return;
    const taken = this.holder.take();
    for (const [id, fds] of taken.fds) {
      const pid = this.containers.has(id) ? this.initPids.get(id) : undefined;
      if (!pid) {
        for (const fd of fds) this.native.closeFd!(fd);
        if (!this.containers.has(id)) this.holder.drop(id);
        this.log.warn({ id, fds: fds.length }, 'notify fds of a container that is not restored: closed');
        continue;
      }
      // Each noted id belongs to one of the fds; on the others ID_VALID just says no.
      for (const fd of fds) this.feed!.adopt(id, pid, fd, taken.seen.get(id));
      this.log.info({ id, fds: fds.length, pid }, 'vetting resumed');
    }
  }

  /**
   * The FUSE servers died with the previous manager, so a restored container's emulated files answer
   * ENOTCONN: put the new servers' files over each dead one (in the container's mount namespace) and
   * register the container with them again. Best effort, like the binds at create.
   */
  private async reattachEmulatedFiles(id: string, pid: number): Promise<void> {
    if (!this.procfsMounted) return;
    try {
      this.procfs?.register(id, pid);
      this.sysctlFs?.register(id, pid);
    } catch (e) {
      this.log.warn({ id, err: (e as Error).message }, 'restored container not registered with /proc emulation');
      return;
    }
    // Every sysctl file died with the old server; probing them from here would look up /proc/sys/net
    // in the manager's netns (another dentry than the container's), so all are put back, in one run.
    const sysctl = (this.sysctlFiles()?.files ?? []).map((f) => ({ source: join(this.config.runDir, 'sysctlfs', f.file), target: f.target }));
    await this.bindIntoMany(pid, sysctl).then(
      () => this.log.info({ id, files: sysctl.length }, 'emulated /proc/sys and /sys files reattached'),
      (e) => this.log.warn({ id, err: (e as Error).message }, 'emulated /proc/sys and /sys files not (all) reattached'));
    const files = EMULATED_PROC_FILES.map((f) => ({ source: join(this.config.runDir, 'procfs', f), target: `/proc/${f}` }));
    for (const f of files) {
      try {
        // open, not stat: a dead FUSE mount may still answer stat from the kernel's attribute cache
        closeSync(openSync(`/proc/${pid}/root${f.target}`, 'r'));
        continue; // alive (or the kernel's own file): leave it
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOTCONN') continue;
      }
      await this.bindInto(pid, f.source, f.target).then(
        () => this.log.info({ id, target: f.target }, 'emulated file reattached'),
        (e) => this.log.warn({ id, target: f.target, err: (e as Error).message }, 'emulated file not reattached'));
    }
  }

  /** After a restart: keep containers runc still knows, clean up the rest, free orphan ranges. */
  private async restoreContainers(): Promise<void> {
    const kv = this.bus.containers;
    for await (const id of await kv.keys()) {
      const e = await kv.get(id);
      if (!e || e.operation !== 'PUT') continue;
      const rec = e.json<StoredRecord>();
      const alive = existsSync(runcStateDir(rec.runcRoot, id));
      if ((rec.state === 'mounted' || rec.state === 'running') && alive) {
        const c = this.createContainer(id, rec.context.bundle, rec.runcRoot, { rootfs: { kind: 'bind', source: '' }, binds: [] }, rec);
        c.protectedPaths = rec.protectedPaths ?? [];
        if (rec.volumePaths) this.volumePaths.set(c, rec.volumePaths);
        const pid = initPidOf(rec, this.runcInitState(rec.runcRoot, id), (p) => { try { return readFileSync(`/proc/${p}/stat`, 'utf8'); } catch { return undefined; } });
        if (pid) this.initPids.set(id, pid);
        this.log.info({ id, state: rec.state }, 'restored container');
        continue;
      }
      this.removeRootfs(id, rec.context.mounts);
      this.allocator.free(id);
      // Killed after the final transition was recorded (during delete): its event is out already.
      if (rec.state === 'stopped' || rec.state === 'failed') { await kv.delete(id); continue; }
      const final = rec.state === 'created' || rec.state === 'mapped' ? 'failed' : 'stopped';
      await this.publish(subjects.containerEvent(id, final), `container.${final}`, {
        container: id, state: final, from: rec.state, uid: rec.context.uid, gid: rec.context.gid, bundle: rec.context.bundle,
        reason: 'ended while the manager was down',
      });
      await kv.delete(id);
    }
    for (const [, owner] of Object.entries(this.allocator.held())) {
      if (!this.containers.has(owner)) this.allocator.free(owner);
    }
    await this.allocator.settled();
    this.sweepOrphanMounts();
  }

  /** Mounts and run dirs of containers no record speaks for (killed before the mount was recorded). */
  private sweepOrphanMounts(): void {
    const r = sweepOrphans(this.native, join(this.config.runDir, 'containers'), new Set(this.containers.keys()));
    if (r.unmounted.length || r.removed.length) this.log.info(r, 'swept mounts and run dirs of containers that are gone');
    if (r.kept.length) this.log.error({ ids: r.kept }, 'run dirs kept: a mount below them could not be removed');
  }

  private runcInitState(runcRoot: string | undefined, id: string): RuncInitState | undefined {
    try {
      return JSON.parse(readFileSync(join(runcStateDir(runcRoot, id), 'state.json'), 'utf8')) as RuncInitState;
    } catch {
      return undefined;
    }
  }

  /** Containers whose runc state vanished (deleted while a report was lost) are cleaned up. */
  async reconcile(): Promise<void> {
    for (const c of this.containers.values()) {
      if ((c.state === 'mounted' || c.state === 'running') && !existsSync(runcStateDir(c.runcRoot, c.id))) {
        // Give an in-flight create a moment: only containers older than the interval are swept.
        if (Date.now() - Date.parse(c.created) < RECONCILE_MS) continue;
        c.send({ type: 'delete' });
      }
    }
  }

  list(): ContainerView[] {
    return [...this.containers.values()].map((c) => ({
      id: c.id, state: c.state, uid: c.context.uid, gid: c.context.gid, rootfs: c.context.rootfs,
      bundle: c.context.bundle, created: c.created, reason: c.context.reason,
    }));
  }

  private async listen(): Promise<void> {
    const path = this.config.socket;
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o711 });
    rmSync(path, { force: true });
    this.server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => resolve());
    });
  }

  private serve(sock: Socket): void {
    const dec = new FrameDecoder();
    const session = new RuntimeSession(this);
    let queue = Promise.resolve();
    sock.on('error', () => {});
    sock.on('data', (chunk) => {
      let frames;
      try {
        frames = dec.push(chunk);
      } catch (e) {
        this.log.warn({ err: e }, 'bad frame from a client');
        sock.destroy();
        return;
      }
      for (const f of frames) {
        queue = queue.then(async () => {
          if (f.kind === 'request') sock.write(encodeReply(await session.request(f.cwd, f.argv)));
          else if (f.kind === 'exit') sock.write(encodeReply(await session.exit(f.status)));
          else sock.write(JSON.stringify(await this.control(f.body)) + '\0');
        }).catch((e) => {
          // The launcher went away mid-call, or a bug: never take the manager down for one client.
          this.log.error({ err: e }, 'runtime call failed');
          sock.destroy();
        });
      }
    });
  }

  private async control(body: unknown): Promise<unknown> {
    const op = (body as { op?: string })?.op;
    if (op === 'ping') return { ok: true, pid: process.pid, version: VERSION, nats: this.bus.url };
    if (op === 'ps') return { ok: true, containers: this.list(), ranges: this.allocator.held() };
    return { ok: false, error: `unknown control op ${JSON.stringify(op)}` };
  }
}
