// ProcFs: one FUSE mount (native mountProcFs) serving /proc/uptime, swaps, meminfo, cpuinfo, stat,
// loadavg and diskstats. Each container has a view of its own (`<mount>/ctr-<id>/`, see viewDir):
// that is what its /proc files are bound from, and it always shows that container, whoever reads it.
// Its own inodes matter: splice/sendfile read through the page cache of the inode despite direct_io,
// so one inode read by several containers (or the host) would hand one reader's text to another.
// The top-level files are for everyone else: attributed to the container whose init shares the
// caller's pid namespace (or, for a nested pid namespace, whose cgroup holds the caller), the host's
// real file for any other caller. The native side caches answers per view and per namespace.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountProcFs, type ProcFsMount } from '../../native/index.ts';
import * as cg from './cgroup-files.ts';
import { cgroupMemoryOf } from './cgroup-memory.ts';
import * as info from './container-info.ts';
import * as render from './render.ts';
import { ContainerViews } from './views.ts';

export const PROCFS_FILES = ['uptime', 'swaps', 'meminfo', 'cpuinfo', 'stat', 'loadavg', 'diskstats'] as const;

export { viewName } from './views.ts';

/**
 * How long (ms) the FUSE server reuses a container's render of each file before asking again: reads
 * within it never reach JS. uptime shows hundredths of a second; the others change slowly.
 */
export const PROCFS_CACHE_MS: Readonly<Record<string, number>> = {
  uptime: 10, swaps: 1000, meminfo: 100, cpuinfo: 1000, stat: 100, loadavg: 100, diskstats: 100,
};

export interface ProcFsOptions {
  /** Files served (default PROCFS_FILES); names outside PROCFS_FILES are passed through from the host. */
  files?: readonly string[];
  /** Fake /proc and /sys/fs/cgroup for tests. */
  roots?: info.Roots;
  /** Replaces native mountProcFs (tests). */
  mount?: typeof mountProcFs;
  /** Render cache TTLs (default PROCFS_CACHE_MS; {} turns the cache off). */
  cacheMs?: Readonly<Record<string, number>>;
}

export class ProcFs {
  private readonly files: readonly string[];
  private readonly roots: info.Roots;
  private readonly mount: typeof mountProcFs;
  private readonly cacheMs: Readonly<Record<string, number>>;
  private readonly containers = new Map<string, info.KnownContainer>();
  /** Start time (s since boot) of each registered init: constant, so read once. */
  private readonly starts = new Map<string, number>();
  /** Load averages of each container, moved on at every loadavg read. */
  private readonly loads = new Map<string, render.Load>();
  private readonly cpus = new Map<string, { visible: number[]; at: number }>();
  private handle: ProcFsMount | undefined;
  private mountpoint: string | undefined;
  private hostPidns: number | undefined;
  /** Container id of each view name added. */
  private readonly views = new ContainerViews(() => ({ dir: this.mountpoint, handle: this.handle }));

  constructor(o: ProcFsOptions = {}) {
    this.files = o.files ?? PROCFS_FILES;
    this.roots = o.roots ?? {};
    this.mount = o.mount ?? mountProcFs;
    this.cacheMs = o.cacheMs ?? PROCFS_CACHE_MS;
  }

  /** Mounts the filesystem at `mountpoint` (an existing directory). Throws NativeError. */
  async start(mountpoint: string): Promise<void> {
    if (this.handle) throw new Error(`ProcFs is already mounted`);
    this.hostPidns = info.pidNamespaceOfSync(process.pid, this.roots);
    this.handle = this.mount({ mountpoint, files: [...this.files], cacheMs: this.cacheMs }, (file, pid, view) => this.read(file, pid, view));
    this.mountpoint = mountpoint;
  }

  /**
   * The directory of container `containerId`'s view, added if needed (before its bind mounts are made:
   * register comes later, once its init runs; until then its files fail with EIO). Undefined when not
   * mounted. Throws NativeError when the id makes no plain directory name.
   */
  viewDir(containerId: string): string | undefined {
    return this.views.dir(containerId);
  }


  /**
   * Serves container `containerId`, whose init has host pid `initPid`, its own view. Throws when the
   * pid is gone or shares the manager's pid namespace (every host process would match it).
   */
  register(containerId: string, initPid: number): void {
    const pidns = info.pidNamespaceOfSync(initPid, this.roots);
    if (pidns === undefined) throw new Error(`procfs: container ${containerId}: no process ${initPid}`);
    if (pidns === (this.hostPidns ?? info.pidNamespaceOfSync(process.pid, this.roots)))
      throw new Error(`procfs: container ${containerId} shares the host pid namespace`);
    const old = this.containers.get(containerId);
    if (old && old.pidns !== pidns) this.handle?.cache?.(old.pidns, false);
    this.containers.set(containerId, { id: containerId, initPid, pidns, cgroup: info.cgroupAnchorSync(initPid, this.roots) });
    this.handle?.cache?.(pidns, true);
    this.viewDir(containerId); // after a manager restart the new mount has no view yet
  }

  unregister(containerId: string): void {
    const c = this.containers.get(containerId);
    if (c && ![...this.containers.values()].some((o) => o !== c && o.pidns === c.pidns)) this.handle?.cache?.(c.pidns, false);
    this.containers.delete(containerId);
    this.views.remove(containerId);
    this.starts.delete(containerId);
    this.loads.delete(containerId);
    this.cpus.delete(containerId);
  }

  /** Unmounts; pending reads fail with EIO. Idempotent. */
  async stop(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    this.containers.clear();
    this.views.clear();
    this.starts.clear();
    this.loads.clear();
    this.cpus.clear();
    await h?.close();
  }

  /**
   * What host pid `callerPid` reads from `file` at the top level (`view` '') or in a view (exported for
   * tests; also the FUSE read handler).
   */
  async read(file: string, callerPid: number, view = ''): Promise<string> {
    if (view) {
      // The view's container, whoever reads; before its registration (or after) an error, never the host's.
      const c = this.containers.get(this.views.containerOf(view) ?? '');
      if (!c) throw new Error(`procfs: view ${view} has no registered container`);
      return (PROCFS_FILES as readonly string[]).includes(file) ? this.renderFor(file, c) : this.host(file);
    }
    // A caller gone before we could attribute it gets an error, not the host's file: the FUSE server may
    // keep this answer for the caller's (container's) namespace.
    if (!(PROCFS_FILES as readonly string[]).includes(file)) return this.host(file);
    const ns = await info.pidNamespaceOf(callerPid, this.roots);
    if (ns === undefined) throw new Error(`procfs: caller ${callerPid} is gone`);
    const same = [...this.containers.values()].filter((k) => k.pidns === ns);
    const c = same.length === 1 ? same[0] : ((await this.byCgroup(callerPid, same.length ? same : undefined)) ?? same[0]);
    return c ? this.renderFor(file, c) : this.host(file);
  }

  /**
   * The container of a caller in a pid namespace of its own (e.g. `unshare -p` inside a container),
   * or of one shared by several containers (`among`: a group's): the one whose init's cgroup holds it. Never cached natively (its namespace is not registered).
   */
  private async byCgroup(callerPid: number, among?: info.KnownContainer[]): Promise<info.KnownContainer | undefined> {
    const anchored = (among ?? [...this.containers.values()]).filter((k) => k.cgroup);
    if (!anchored.length) return undefined;
    const text = await info.procCgroupText(callerPid, this.roots);
    if (text === undefined) throw new Error(`procfs: caller ${callerPid} is gone`);
    return anchored.find((k) => info.inCgroup(text, k.cgroup!));
  }

  private host(file: string): Promise<string> {
    return readFile(join(this.roots.proc ?? '/proc', file), 'utf8');
  }

  /**
   * The container's view of `file`. Never the host's: with its init gone (a dying container) uptime is
   * 0 and the cgroup figures are the defaults each renderer documents.
   */
  private async renderFor(file: string, c: info.KnownContainer): Promise<string> {
    switch (file) {
      case 'uptime': {
        const start = await this.startOf(c);
        if (start === undefined) return render.uptime(0, 0, 0);
        const [[now], busy, cpus] = await Promise.all([
          info.hostUptime(this.roots),
          cg.cgroupCpuSeconds(c.initPid, this.roots),
          this.cpusOf(c),
        ]);
        // Idle is summed over CPUs, as the kernel does: the container's CPUs' time minus what it used.
        const cpuTime = Math.max(0, now - start) * cpus.visible.length;
        return render.uptime(now, start, busy === undefined ? cpuTime : cpuTime - busy);
      }
      case 'swaps':
        return render.swaps();
      case 'meminfo': {
        const [host, mem] = await Promise.all([this.host('meminfo'), cgroupMemoryOf(c.initPid, this.roots)]);
        return render.meminfo(host, mem);
      }
      case 'cpuinfo': {
        const [host, cpus] = await Promise.all([this.host('cpuinfo'), this.cpusOf(c)]);
        return render.cpuinfo(host, cpus.visible);
      }
      case 'stat': {
        const start = (await this.startOf(c)) ?? 0;
        const [hostStat, [now], cpu, tids] = await Promise.all([
          this.host('stat'),
          info.hostUptime(this.roots),
          cg.cgroupCpuOf(c.initPid, this.roots),
          cg.cgroupTasksOf(c.initPid, this.roots),
        ]);
        const visible = render.visibleCpus(render.statCpus(hostStat), cpu.cpus, cpu.quotaCpus);
        const hostBtime = Number(hostStat.match(/^btime (\d+)/m)?.[1] ?? 0);
        const cut = cpu.quotaCpus !== undefined && visible.length < (cpu.cpus?.length ?? Infinity);
        return render.stat({
          cpus: visible,
          uptimeSeconds: Math.max(0, now - start),
          userSeconds: cpu.userSeconds,
          systemSeconds: cpu.systemSeconds,
          // Per-CPU times only when the CPUs shown are the ones used; with a quota cut, spread the total.
          perCpuUser: cut ? undefined : cpu.perCpuUser,
          perCpuSystem: cut ? undefined : cpu.perCpuSystem,
          btime: hostBtime + start,
          tasks: await info.sampleTasks(tids ?? [c.initPid], this.roots),
          clkTck: info.clkTck(),
        });
      }
      case 'loadavg': {
        const tids = (await cg.cgroupTasksOf(c.initPid, this.roots)) ?? [c.initPid];
        const t = await info.sampleTasks(tids, this.roots);
        const load = render.decayLoad(this.loads.get(c.id), t.running + t.blocked, performance.now() / 1000);
        if (this.containers.get(c.id) === c) this.loads.set(c.id, load);
        return render.loadavg(load.avg, t.running, t.total, t.lastPid);
      }
      case 'diskstats': {
        const [host, io] = await Promise.all([this.host('diskstats'), cg.cgroupIoOf(c.initPid, this.roots)]);
        return render.diskstats(host, io);
      }
      default:
        throw new Error(`procfs: no renderer for ${file}`);
    }
  }

  /** Start time of the container's init (constant, so read once while registered). */
  private async startOf(c: info.KnownContainer): Promise<number | undefined> {
    const start = this.starts.get(c.id) ?? (await info.startTimeSinceBoot(c.initPid, this.roots));
    if (start !== undefined && this.containers.get(c.id) === c) this.starts.set(c.id, start);
    return start;
  }

  /** The CPUs the container sees; kept for a second (limits rarely change; uptime asks 100 times a second). */
  private async cpusOf(c: info.KnownContainer): Promise<{ visible: number[] }> {
    const now = performance.now();
    const kept = this.cpus.get(c.id);
    if (kept && now - kept.at < 1000) return kept;
    const [hostStat, cpu] = await Promise.all([this.host('stat').catch(() => ''), cg.cgroupCpuOf(c.initPid, this.roots)]);
    const online = render.statCpus(hostStat);
    const v = { visible: render.visibleCpus(online.length ? online : [0], cpu.cpus, cpu.quotaCpus), at: now };
    if (this.containers.get(c.id) === c) this.cpus.set(c.id, v);
    return v;
  }
}
