// The manager: one NATS bus, the allocator actor, one actor per container, and the unix socket the
// eci-runc launcher talks to. Container state survives restarts in KV; events go to JetStream.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { connectBus, type Bus } from '../bus/connect.ts';
import { envelope } from '../bus/events.ts';
import { subjects } from '../bus/subjects.ts';
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
import { busSysctlClient, SysctlFs } from './sysctl/fs.ts';
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

  private vetter?: VetterActor;
  private feed?: NotifyFeed;
  private procfs?: ProcFs;
  private procfsMounted = false;
  private sysctl?: SysctlReconciler;
  private sysctlFs?: SysctlFs;
  private sysctlMounted = false;

  constructor(readonly config: ManagerConfig, readonly log: Logger, private native: RootfsNative & FeedNative & { bindInto(pid: number, source: string, target: string): Promise<void> }) {}

  procfsDir(): string | undefined {
    return this.procfsMounted ? join(this.config.runDir, 'procfs') : undefined;
  }

  /** Per-container sysctl files (reconciled entries): FUSE file name and /proc/sys path. */
  sysctlFiles(): { dir: string; files: { file: string; path: string }[] } | undefined {
    if (!this.sysctlMounted || !this.sysctl) return undefined;
    return { dir: join(this.config.runDir, 'sysctlfs'), files: this.sysctl.reconciled().map((k) => ({ file: k.file, path: k.path })) };
  }

  bindInto(pid: number, source: string, target: string): Promise<void> {
    return this.native.bindInto(pid, source, target);
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
    await this.publish(subjects.settingsEvent('changed'), 'settings.changed', { path: this.config.settingsPath, settings: next });
  }

  async start(): Promise<void> {
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(join(this.config.runDir, 'containers'), { recursive: true, mode: 0o711 });
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
    await this.reloadSettings(true);
    watchFile(this.config.settingsPath, { interval: 500 }, () => void this.reloadSettings());
    this.bus = await connectBus({ url: this.config.natsUrl, stateDir: this.config.stateDir, port: this.config.natsPort, name: 'eci-manager' });
    this.allocator = new AllocatorActor(this.config.range ?? this.current.idRange, {
      nc: this.bus.nc, kv: this.bus.ranges, log: this.log,
      publish: (subject, type, data) => this.publish(subject, type, data),
    });
    await this.allocator.start();
    this.vetter = new VetterActor(this.bus.nc);
    this.vetter.start();
    this.feed = new NotifyFeed({
      log: this.log, nc: this.bus.nc,
      publish: (subject, type, data) => this.publish(subject, type, data),
      vet: (req) => this.vetter!.vet(req),
      protectedPaths: (id) => this.containers.get(id)?.protectedPaths,
      containerProcess: (id, pid) => {
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
      bindInto: (pid, source, target) => this.bindInto(pid, source, target),
    }, this.native);
    this.feed.start(this.seccompSocket());
    // /proc emulation is an addition, not a guard: without FUSE containers run with the kernel's files.
    try {
      const dir = join(this.config.runDir, 'procfs');
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      // A manager that was killed leaves its FUSE mount behind, dead (ENOTCONN): detach it first.
      try { this.native.unmount(dir, { detach: true }); } catch { /* nothing was mounted */ }
      this.procfs = new ProcFs();
      await this.procfs.start(dir);
      this.procfsMounted = true;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, '/proc emulation unavailable; containers see the kernel files');
    }
    // The sysctl reconciler: per-container values of non-namespaced entries, host = max of the live.
    this.sysctl = new SysctlReconciler({ kv: this.bus.sysctl, nc: this.bus.nc, publish: (s, t, d) => this.publish(s, t, d), log: this.log.child({ actor: 'sysctl' }) });
    await this.sysctl.start();
    if (this.procfsMounted) {
      try {
        const dir = join(this.config.runDir, 'sysctlfs');
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        try { this.native.unmount(dir, { detach: true }); } catch { /* nothing was mounted */ }
        this.sysctlFs = new SysctlFs({ client: busSysctlClient(this.bus.nc), keys: this.sysctl.reconciled() });
        await this.sysctlFs.start(dir);
        this.sysctlMounted = true;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'per-container sysctl files unavailable');
      }
    }
    await this.restoreContainers();
    this.sysctl.retainOnly(this.containers.keys()); // values of containers gone while we were down no longer count
    await this.listen();
    this.timer = setInterval(() => void this.reconcile(), RECONCILE_MS);
    this.timer.unref();
    await this.publish(subjects.managerEvent('started'), 'manager.started', { pid: process.pid, version: VERSION, nats: this.bus.url });
    this.log.info({ socket: this.config.socket, nats: this.bus.url, range: this.allocator.config, settings: this.config.settingsPath }, 'eci manager ready');
  }

  async stop(o?: { stopServer?: boolean }): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    unwatchFile(this.config.settingsPath);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.config.socket, { force: true });
    await Promise.all([...this.chains.values()]);
    await this.allocator?.settled();
    await this.publish(subjects.managerEvent('stopping'), 'manager.stopping', { pid: process.pid, version: VERSION, nats: this.bus.url }).catch(() => {});
    await this.feed?.stop();
    await this.procfs?.stop().catch(() => {});
    await this.sysctlFs?.stop().catch(() => {});
    this.sysctl?.stop();
    this.vetter?.stop();
    this.allocator?.stop();
    for (const c of this.containers.values()) c.actor.stop();
    await this.bus?.close({ stopServer: o?.stopServer ?? true });
  }

  /** Publishes one event to JetStream; the ulid is the message id, so a retry is not a duplicate. */
  async publish(subject: string, type: string, data: unknown): Promise<void> {
    const env = envelope(type, data);
    try {
      await this.bus.js.publish(subject, JSON.stringify(env), { msgID: env.id });
    } catch (e) {
      this.log.error({ err: e, subject, type }, 'cannot publish event');
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
    const c = new ContainerActor(id, bundle, {
      requestRange: (owner) => this.requestRange(owner),
      freeRange: async (owner) => {
        await this.bus.nc.request(subjects.allocatorFree, JSON.stringify({ owner }), { timeout: 5000 }).catch((e) => {
          this.log.error({ err: e, owner }, 'cannot free range over the bus; freeing directly');
          this.allocator.free(owner);
        });
      },
      mountRootfs: async (cid, uid, gid) => {
        const target = this.rootfsTarget(cid);
        mkdirSync(target, { recursive: true, mode: 0o711 });
        let mounts: MountRef[] = [];
        const t = performance.now();
        try {
          mounts = await mountRootfs(this.native, plan.rootfs, target, uid, gid);
          this.log.debug({ id: cid, ms: +(performance.now() - t).toFixed(2) }, 'rootfs mounted');
          if (plan.binds.length) mkdirSync(join(this.containerDir(cid), 'binds'), { mode: 0o711 });
          mounts.push(...mountBinds(this.native, plan.binds, uid, gid));
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
      unmountRootfs: async (cid, mounts) => this.removeRootfs(cid, mounts),
      transition: (state, from, ctx) => this.onTransition(c, state, from, ctx),
    }, { runcRoot, created: restore?.created, restore });
    this.containers.set(id, c);
    c.released.then(() => {
      if (this.containers.get(id) === c) this.containers.delete(id);
      this.feed?.forget(id);
      this.procfs?.unregister(id);
      this.sysctlFs?.unregister(id);
      this.sysctl?.gone(id);
      this.vetter?.forget(id);
      this.chain(id, () => this.bus.containers.delete(id).catch(() => {}));
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

  private chain(id: string, f: () => Promise<unknown>): void {
    const next = (this.chains.get(id) ?? Promise.resolve()).then(f).then(() => {}, (e) => this.log.error({ err: e, id }, 'bus write failed'));
    this.chains.set(id, next);
    next.then(() => { if (this.chains.get(id) === next) this.chains.delete(id); });
  }

  private onTransition(c: ContainerActor, state: ContainerStateName, from: ContainerStateName | undefined, ctx: ContainerContext): void {
    this.log.info({ id: c.id, state, from, uid: ctx.uid?.hostID, reason: ctx.reason }, `container ${state}`);
    const data = { container: c.id, state, from, uid: ctx.uid, gid: ctx.gid, rootfs: ctx.rootfs, bundle: ctx.bundle, reason: ctx.reason };
    const record: ContainerRecord = { state, context: ctx, runcRoot: c.runcRoot, created: c.created };
    this.chain(c.id, async () => {
      await this.publish(subjects.containerEvent(c.id, state), `container.${state}`, data);
      await this.bus.containers.put(c.id, JSON.stringify(record));
    });
  }

  /** After a restart: keep containers runc still knows, clean up the rest, free orphan ranges. */
  private async restoreContainers(): Promise<void> {
    const kv = this.bus.containers;
    for await (const id of await kv.keys()) {
      const e = await kv.get(id);
      if (!e || e.operation !== 'PUT') continue;
      const rec = e.json<ContainerRecord>();
      const alive = existsSync(runcStateDir(rec.runcRoot, id));
      if ((rec.state === 'mounted' || rec.state === 'running') && alive) {
        this.createContainer(id, rec.context.bundle, rec.runcRoot, { rootfs: { kind: 'bind', source: '' }, binds: [] }, rec);
        this.log.info({ id, state: rec.state }, 'restored container');
        continue;
      }
      this.removeRootfs(id, rec.context.mounts);
      this.allocator.free(id);
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
