// Pure renderers of the /proc files eci emulates for containers (what LXCFS/sysbox-fs show).
// No I/O here: container-info.ts, cgroup-files.ts and cgroup-memory.ts gather the inputs.

/** /proc/uptime: "<uptime> <idle>\n" in seconds, two decimals. `now` and `initStartTime` are seconds
 *  on the same clock (e.g. since boot); a negative difference (clock skew) shows as 0. */
export function uptime(now: number, initStartTime: number, idleSeconds: number): string {
  const up = Math.max(0, now - initStartTime);
  const idle = Math.min(Math.max(0, idleSeconds), Number.MAX_VALUE);
  return `${up.toFixed(2)} ${idle.toFixed(2)}\n`;
}

/** The kernel's /proc/swaps header (mm/swapfile.c swap_show): a container sees no swap device. */
export const SWAPS_HEADER = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n';

export function swaps(): string {
  return SWAPS_HEADER;
}

/** A cgroup's memory.stat in bytes, named by what /proc/meminfo shows (cgroup-memory.ts reads v1 and v2). */
export interface MemoryStat {
  /** Page cache, shmem included (v1 cache, v2 file). */
  cache: number;
  /** Anonymous memory, shmem excluded (v1 rss, v2 anon). */
  anon: number;
  shmem: number;
  mapped: number;
  dirty: number;
  writeback: number;
  activeAnon: number;
  inactiveAnon: number;
  activeFile: number;
  inactiveFile: number;
  unevictable: number;
  /** v2 only (0 on v1, which does not account slab here). */
  slabReclaimable: number;
  slabUnreclaimable: number;
  kernelStack: number;
  pageTables: number;
  percpu: number;
  anonHuge: number;
  shmemHuge: number;
  fileHuge: number;
}

export interface MemoryLimits {
  /** The cgroup's memory limit; absent (or not below the host's MemTotal) means unlimited. */
  limitBytes?: number;
  /** The cgroup's current usage. */
  usageBytes?: number;
  /** The cgroup's memory.stat: with it every amount line is the cgroup's (see meminfo). */
  stat?: MemoryStat;
}

/**
 * Lines of /proc/meminfo that are facts about the host's kernel or hardware, not memory a cgroup
 * uses: kept as the host's. Every other amount line is the container's (0 when its cgroup keeps no
 * such counter), as LXCFS does.
 */
const HOST_FACTS = /^(Vmalloc\w*|HugePages_\w+|Hugepagesize|Hugetlb|DirectMap\w+|Balloon|HardwareCorrupted|Cma\w+)$/;

/** The container's meminfo lines (kB) from its limit, usage and memory.stat. */
function cgroupMeminfo(limit: number, used: number, free: number, avail: number, st: MemoryStat): Record<string, number> {
  const kB = (bytes: number) => Math.min(limit, Math.max(0, Math.floor(bytes / 1024)));
  const cache = Math.min(kB(st.cache), used);
  return {
    MemTotal: limit, MemFree: free, MemAvailable: avail,
    Buffers: 0, Cached: cache, SwapCached: 0,
    Active: kB(st.activeAnon + st.activeFile), Inactive: kB(st.inactiveAnon + st.inactiveFile),
    'Active(anon)': kB(st.activeAnon), 'Inactive(anon)': kB(st.inactiveAnon),
    'Active(file)': kB(st.activeFile), 'Inactive(file)': kB(st.inactiveFile),
    Unevictable: kB(st.unevictable), Mlocked: 0,
    // /proc/swaps shows no swap device to a container.
    SwapTotal: 0, SwapFree: 0, Zswap: 0, Zswapped: 0,
    Dirty: kB(st.dirty), Writeback: kB(st.writeback), AnonPages: kB(st.anon), Mapped: kB(st.mapped), Shmem: kB(st.shmem),
    KReclaimable: kB(st.slabReclaimable), Slab: kB(st.slabReclaimable + st.slabUnreclaimable),
    SReclaimable: kB(st.slabReclaimable), SUnreclaim: kB(st.slabUnreclaimable),
    KernelStack: kB(st.kernelStack), PageTables: kB(st.pageTables), SecPageTables: 0,
    NFS_Unstable: 0, Bounce: 0, WritebackTmp: 0,
    // No swap: what it may commit is its limit; what it has committed, about its anonymous and shared memory.
    CommitLimit: limit, Committed_AS: kB(st.anon + st.shmem),
    Percpu: kB(st.percpu), AnonHugePages: kB(st.anonHuge), ShmemHugePages: kB(st.shmemHuge), ShmemPmdMapped: 0,
    FileHugePages: kB(st.fileHuge), FilePmdMapped: 0, Unaccepted: 0,
  };
}

/**
 * The host's /proc/meminfo, layout kept, as the container sees it when its cgroup has a limit below
 * the host's memory: MemTotal = limit, MemFree = limit - usage (floored at 0, and never above the
 * host's own value). With the cgroup's memory.stat, every amount line but the host facts (HOST_FACTS)
 * is the cgroup's, as LXCFS shows it: Cached, Active/Inactive, Shmem, Slab... from memory.stat, no
 * swap, Buffers 0, each at most the limit; MemAvailable = free + file pages + reclaimable slab, at
 * most the limit and the host's. Without memory.stat, MemAvailable = MemFree and the other lines are
 * the host's. Without a limit (or one above the host's memory), the host's file.
 */
export function meminfo(hostMeminfoText: string, m: MemoryLimits): string {
  const kB = (line: string | undefined): number | undefined => {
    const v = line?.match(/^\S+:\s*(\d+)/)?.[1];
    return v === undefined ? undefined : Number(v);
  };
  const lines = hostMeminfoText.split('\n');
  const find = (key: string) => lines.find((l) => l.startsWith(`${key}:`));
  const hostTotal = kB(find('MemTotal'));
  if (m.limitBytes === undefined || !Number.isFinite(m.limitBytes) || m.limitBytes < 0) return hostMeminfoText;
  const limit = Math.floor(m.limitBytes / 1024);
  if (hostTotal !== undefined && limit >= hostTotal) return hostMeminfoText;
  const used = Math.min(limit, Math.max(0, Math.floor((m.usageBytes ?? 0) / 1024)));
  const free = limit - used;
  const hostFree = kB(find('MemFree'));
  const hostAvail = kB(find('MemAvailable'));
  const st = m.stat;
  const reclaimable = st ? Math.floor((st.activeFile + st.inactiveFile + st.slabReclaimable) / 1024) : 0;
  const avail = Math.min(limit, free + reclaimable);
  const values: Record<string, number> = {
    MemTotal: limit,
    MemFree: hostFree === undefined ? free : Math.min(free, hostFree),
    MemAvailable: hostAvail === undefined ? avail : Math.min(avail, hostAvail),
  };
  const own = st ? cgroupMeminfo(limit, used, values.MemFree, values.MemAvailable, st) : values;
  return lines
    .map((l) => {
      const match = l.match(/^([^:\s]+):(\s*)(\d+)(.*)$/);
      if (!match) return l;
      const [, key, space, digits, rest] = match;
      if (st && HOST_FACTS.test(key)) return l;
      // A line without a cgroup counter (a kernel newer than this table) counts 0 for the container.
      const v = own[key] ?? (st ? 0 : undefined);
      if (v === undefined) return l;
      const value = String(v);
      // Keep the column: the kernel right-aligns the number in a fixed width after "Key:".
      const pad = Math.max(1, space.length + digits.length - value.length);
      return `${key}:${' '.repeat(pad)}${value}${rest}`;
    })
    .join('\n');
}

// ---------- CPUs: which ones a container sees ----------

/**
 * The host CPUs shown to a container, in order: its cpuset (or all of `online` when unknown), cut to
 * ceil(quota) CPUs when a CFS quota allows fewer (as LXCFS does with --enable-cfs). At least one.
 */
export function visibleCpus(online: number[], cpuset: number[] | undefined, quotaCpus: number | undefined): number[] {
  let cpus = cpuset && cpuset.length ? cpuset.filter((c) => online.includes(c)) : online;
  if (cpus.length === 0) cpus = online.length ? online : [0];
  if (quotaCpus !== undefined && Number.isFinite(quotaCpus) && quotaCpus > 0) cpus = cpus.slice(0, Math.max(1, Math.ceil(quotaCpus - 1e-9)));
  return cpus;
}

/** Online CPU numbers of the host's /proc/stat ("cpuN" lines). */
export function statCpus(hostStatText: string): number[] {
  return [...hostStatText.matchAll(/^cpu(\d+) /gm)].map((m) => Number(m[1]));
}

/**
 * /proc/cpuinfo: the host's blocks ("processor : N" up to the blank line) of the visible CPUs only,
 * renumbered 0..k-1; blocks without a processor line (some architectures' trailer) are kept.
 */
export function cpuinfo(hostCpuinfoText: string, cpus: number[]): string {
  const blocks = hostCpuinfoText.split(/\n\n+/).filter((b) => b.trim() !== '');
  const out: string[] = [];
  for (const b of blocks) {
    const m = b.match(/^processor\s*:\s*(\d+)/m);
    if (!m) {
      out.push(b);
      continue;
    }
    const k = cpus.indexOf(Number(m[1]));
    if (k < 0) continue;
    out.push(b.replace(/^(processor\s*:\s*)\d+/m, `$1${k}`));
  }
  return out.map((b) => `${b.replace(/\n+$/, '')}\n\n`).join('');
}

// ---------- /proc/stat ----------

export interface StatInputs {
  /** Host CPU numbers shown, in order (visibleCpus); rendered as cpu0..cpuK-1. */
  cpus: number[];
  /** Container uptime in seconds: each visible CPU's user + system + idle adds up to it. */
  uptimeSeconds: number;
  userSeconds?: number;
  systemSeconds?: number;
  /** Per host CPU usage (seconds), used when present for every visible CPU and no quota cut them. */
  perCpuUser?: number[];
  perCpuSystem?: number[];
  /** Host boot time plus the init's start: so that btime + uptime is now. */
  btime: number;
  /** TaskSample of the container. */
  tasks?: { running: number; blocked: number; ctxt: number; lastPid: number };
  clkTck: number;
}

/**
 * /proc/stat of a container. cpuN: user and system from the cgroup (per CPU when the kernel keeps it,
 * else the total spread evenly), idle = uptime - user - system, other columns 0; "cpu" is their sum.
 * intr/softirq: totals 0 (interrupts are not per container). ctxt: context switches of the live tasks.
 * btime: the container's boot time. processes: forks, approximated by the highest pid in its pid
 * namespace. procs_running/procs_blocked: its tasks in state R / D (at least 1 running: the reader).
 */
export function stat(s: StatInputs): string {
  const n = s.cpus.length;
  const perCpu = !!(s.perCpuUser && s.perCpuSystem && s.cpus.every((c) => c < s.perCpuUser!.length && c < s.perCpuSystem!.length));
  const ticks = (sec: number) => Math.max(0, Math.round(sec * s.clkTck));
  const upTicks = ticks(s.uptimeSeconds);
  const rows = s.cpus.map((c) => {
    const user = ticks(perCpu ? s.perCpuUser![c] : (s.userSeconds ?? 0) / n);
    const system = ticks(perCpu ? s.perCpuSystem![c] : (s.systemSeconds ?? 0) / n);
    return [user, 0, system, Math.max(0, upTicks - user - system), 0, 0, 0, 0, 0, 0];
  });
  const sum = rows.reduce((a, r) => a.map((v, i) => v + r[i]), Array<number>(10).fill(0));
  const t = s.tasks ?? { running: 1, blocked: 0, ctxt: 0, lastPid: 1 };
  return [
    `cpu  ${sum.join(' ')}`,
    ...rows.map((r, k) => `cpu${k} ${r.join(' ')}`),
    'intr 0',
    `ctxt ${t.ctxt}`,
    `btime ${Math.floor(s.btime)}`,
    `processes ${Math.max(1, t.lastPid)}`,
    `procs_running ${Math.max(1, t.running)}`,
    `procs_blocked ${t.blocked}`,
    'softirq 0 0 0 0 0 0 0 0 0 0 0',
    '',
  ].join('\n');
}

// ---------- /proc/loadavg ----------

/** Load averages (1, 5, 15 min) and when they were last updated (seconds, any monotonic clock). */
export interface Load {
  avg: [number, number, number];
  at: number;
}

/**
 * Moves the container's load averages to time `now` given `active` = its tasks in state R or D: the
 * kernel's exponential decay (calc_load), but continuous in time, since eci samples only when read.
 */
export function decayLoad(prev: Load | undefined, active: number, now: number): Load {
  if (!prev) return { avg: [0, 0, 0], at: now }; // a container starts idle, as a booting kernel does
  const dt = Math.max(0, now - prev.at);
  const avg = prev.avg.map((a, i) => {
    const e = Math.exp(-dt / [60, 300, 900][i]);
    return a * e + active * (1 - e);
  }) as [number, number, number];
  return { avg, at: now };
}

/** /proc/loadavg: "1min 5min 15min running/total lastpid", as the kernel prints it. */
export function loadavg(load: [number, number, number], running: number, total: number, lastPid: number): string {
  return `${load.map((l) => l.toFixed(2)).join(' ')} ${Math.max(1, running)}/${Math.max(1, total)} ${lastPid}\n`;
}

// ---------- /proc/diskstats ----------

export interface DiskIo {
  readIos: number;
  writeIos: number;
  readBytes: number;
  writeBytes: number;
  discardIos: number;
  discardBytes: number;
}

/**
 * /proc/diskstats: the host's devices (major, minor, name, same number of columns) with the container's
 * own counters from its cgroup: reads/writes/discards completed and sectors (bytes / 512); merges,
 * times, in-flight and flushes are 0 (cgroups do not keep them). A device it never touched shows zeros.
 */
export function diskstats(hostDiskstatsText: string, io: Map<string, DiskIo>): string {
  const out: string[] = [];
  for (const line of hostDiskstatsText.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14) continue;
    const [maj, min, name] = f;
    const d = io.get(`${maj}:${min}`);
    const v = Array<number>(f.length - 3).fill(0);
    if (d) {
      v[0] = d.readIos;
      v[2] = Math.floor(d.readBytes / 512);
      v[4] = d.writeIos;
      v[6] = Math.floor(d.writeBytes / 512);
      if (v.length >= 15) {
        v[11] = d.discardIos;
        v[13] = Math.floor(d.discardBytes / 512);
      }
    }
    out.push(`${maj.padStart(4)} ${min.padStart(7)} ${name} ${v.join(' ')}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
