// Effects for the procfs emulation: which container a host pid belongs to (by pid namespace), when
// that container's init started, and its cgroup memory limit/usage. Host paths only; no namespaces
// entered. Every function takes a `proc`/`cgroupRoot` so tests can point it at a fake tree.
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Roots {
  /** Host procfs (default /proc). */
  proc?: string;
  /** Host cgroup mount (default /sys/fs/cgroup): v2 at the root, or v1 controllers + 'unified'. */
  cgroupRoot?: string;
}

const procOf = (r: Roots) => r.proc ?? '/proc';
const cgroupOf = (r: Roots) => r.cgroupRoot ?? '/sys/fs/cgroup';

/** Inode of the pid namespace of host pid `pid` (stat of /proc/<pid>/ns/pid); undefined when gone. */
export async function pidNamespaceOf(pid: number, r: Roots = {}): Promise<number | undefined> {
  try {
    return (await stat(join(procOf(r), String(pid), 'ns', 'pid'))).ino;
  } catch {
    return undefined;
  }
}

/** Synchronous pidNamespaceOf, for registration. */
export function pidNamespaceOfSync(pid: number, r: Roots = {}): number | undefined {
  try {
    return statSync(join(procOf(r), String(pid), 'ns', 'pid')).ino;
  } catch {
    return undefined;
  }
}

/** The NSpid line of /proc/<pid>/status: the pid as seen from each nested pid namespace, host first. */
export function parseNSpid(statusText: string): number[] {
  const line = statusText.split('\n').find((l) => l.startsWith('NSpid:'));
  return line ? line.slice(6).trim().split(/\s+/).map(Number).filter(Number.isInteger) : [];
}

export interface KnownContainer {
  id: string;
  /** Host pid of the container's init (pid 1 of its pid namespace). */
  initPid: number;
  /** Inode of the init's pid namespace. */
  pidns: number;
  /** The init's own cgroup (not the root) in one hierarchy: finds callers in nested pid namespaces. */
  cgroup?: CgroupAnchor;
}

export interface CgroupAnchor {
  /** v1 controller name, '' for v2. */
  controller: string;
  path: string;
}

/** Controllers tried for a container's CgroupAnchor, v1 first (Docker on a hybrid host), then v2. */
const ANCHOR_CONTROLLERS = ['pids', 'memory', 'cpu', 'cpuacct', ''];

/** The CgroupAnchor of host pid `pid` (read at registration), undefined when it is in no own cgroup. */
export function cgroupAnchorSync(pid: number, r: Roots = {}): CgroupAnchor | undefined {
  let cg: Map<string, string>;
  try {
    cg = parseProcCgroup(readFileSync(join(procOf(r), String(pid), 'cgroup'), 'utf8'));
  } catch {
    return undefined;
  }
  for (const controller of ANCHOR_CONTROLLERS) {
    const path = cg.get(controller);
    if (path !== undefined && path !== '/' && path !== '') return { controller, path };
  }
  return undefined;
}

/** Whether /proc/<pid>/cgroup text puts the process in `a`'s cgroup or below it. */
export function inCgroup(procCgroupText: string, a: CgroupAnchor): boolean {
  const p = parseProcCgroup(procCgroupText).get(a.controller);
  return p !== undefined && (p === a.path || p.startsWith(`${a.path}/`));
}

/** /proc/<pid>/cgroup of host pid `pid`, undefined when gone. */
export async function procCgroupText(pid: number, r: Roots = {}): Promise<string | undefined> {
  try {
    return await readFile(join(procOf(r), String(pid), 'cgroup'), 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The container that host pid `pid` belongs to: the one whose init shares its pid namespace. A process
 * in a nested pid namespace of a container is not matched (it sees its own namespace's init).
 */
export async function findContainer(pid: number, known: Iterable<KnownContainer>, r: Roots = {}): Promise<KnownContainer | undefined> {
  const ns = await pidNamespaceOf(pid, r);
  if (ns === undefined) return undefined;
  for (const c of known) if (c.pidns === ns) return c;
  return undefined;
}

let clockTicks: number | undefined;

/** sysconf(_SC_CLK_TCK) via getconf, 100 when unknown. */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim());
      clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Field 22 (starttime, clock ticks since boot) of a /proc/<pid>/stat line; the comm may hold ') '. */
export function parseStartTicks(statText: string): number | undefined {
  const rest = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  const v = Number(rest[22 - 3]);
  return Number.isFinite(v) ? v : undefined;
}

/** Seconds since boot at which host pid `pid` started. */
export async function startTimeSinceBoot(pid: number, r: Roots = {}): Promise<number | undefined> {
  try {
    const ticks = parseStartTicks(await readFile(join(procOf(r), String(pid), 'stat'), 'utf8'));
    return ticks === undefined ? undefined : ticks / clkTck();
  } catch {
    return undefined;
  }
}

/** [uptime, idle] of the host, in seconds since boot (/proc/uptime). */
export async function hostUptime(r: Roots = {}): Promise<[number, number]> {
  const [up, idle] = (await readFile(join(procOf(r), 'uptime'), 'utf8')).trim().split(/\s+/).map(Number);
  return [up, idle];
}

/** Cgroup paths of /proc/<pid>/cgroup: v1 by controller name, v2 under '' (the "0::" line). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.match(/^\d+:([^:]*):(.*)$/);
    if (!m) continue;
    for (const c of m[1] === '' ? [''] : m[1].split(',')) out.set(c, m[2]);
  }
  return out;
}

/** A cgroup memory value; "max" and v1's "unlimited" (>= 2^62) are undefined. */
function parseBytes(text: string): number | undefined {
  const t = text.trim();
  if (t === 'max' || t === '') return undefined;
  const b = BigInt(t);
  return b >= 1n << 62n ? undefined : Number(b);
}

async function readBytes(path: string): Promise<number | undefined> {
  try {
    return parseBytes(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

export interface CgroupMemory {
  limitBytes?: number;
  usageBytes?: number;
}

/**
 * The memory limit and usage of host pid `pid`'s cgroup: the v1 memory controller when the pid is in
 * one (memory.limit_in_bytes / memory.usage_in_bytes), else v2 (memory.max / memory.current) at the
 * cgroup root or, on a hybrid host, under 'unified'. Empty when unknown.
 */
export async function cgroupMemoryOf(pid: number, r: Roots = {}): Promise<CgroupMemory> {
  let cg: Map<string, string>;
  try {
    cg = parseProcCgroup(await readFile(join(procOf(r), String(pid), 'cgroup'), 'utf8'));
  } catch {
    return {};
  }
  const root = cgroupOf(r);
  const v1 = cg.get('memory');
  if (v1 !== undefined) {
    const dir = join(root, 'memory', v1);
    const limitBytes = await readBytes(join(dir, 'memory.limit_in_bytes'));
    const usageBytes = await readBytes(join(dir, 'memory.usage_in_bytes'));
    if (limitBytes !== undefined || usageBytes !== undefined) return { limitBytes, usageBytes };
  }
  const v2 = cg.get('');
  if (v2 !== undefined) {
    for (const base of [root, join(root, 'unified')]) {
      const dir = join(base, v2);
      const limitBytes = await readBytes(join(dir, 'memory.max'));
      const usageBytes = await readBytes(join(dir, 'memory.current'));
      if (limitBytes !== undefined || usageBytes !== undefined) return { limitBytes, usageBytes };
    }
  }
  return {};
}

/** CPU time (seconds) used by host pid `pid`'s cgroup: v1 cpuacct.usage or v2 cpu.stat usage_usec. */
export async function cgroupCpuSeconds(pid: number, r: Roots = {}): Promise<number | undefined> {
  try {
    const cg = parseProcCgroup(await readFile(join(procOf(r), String(pid), 'cgroup'), 'utf8'));
    const root = cgroupOf(r);
    const v1 = cg.get('cpuacct');
    if (v1 !== undefined) {
      try {
        return Number(await readFile(join(root, 'cpuacct', v1, 'cpuacct.usage'), 'utf8')) / 1e9;
      } catch {
        /* try v2 */
      }
    }
    const v2 = cg.get('');
    if (v2 !== undefined) {
      for (const base of [root, join(root, 'unified')]) {
        try {
          const m = (await readFile(join(base, v2, 'cpu.stat'), 'utf8')).match(/^usage_usec (\d+)/m);
          if (m) return Number(m[1]) / 1e6;
        } catch {
          /* next */
        }
      }
    }
  } catch {
    /* gone */
  }
  return undefined;
}

// ---------- cpu, tasks and block I/O of a container's cgroup (cpuinfo, stat, loadavg, diskstats) ----------

/** A cpu list as the kernel writes it ("0-3,8,10-11"); malformed parts are skipped. */
export function parseCpuList(text: string): number[] {
  const out = new Set<number>();
  for (const part of text.trim().split(',')) {
    const m = part.trim().match(/^(\d+)(?:-(\d+))?$/);
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let i = a; i <= b && i - a < 4096; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** Where one process's cgroup files are: v1 directories by controller, v2 directory candidates. */
export interface CgroupDirs {
  v1: Map<string, string>;
  /** The "0::" path under the cgroup root and, on a hybrid host, under 'unified'. */
  v2: string[];
}

export async function cgroupDirsOf(pid: number, r: Roots = {}): Promise<CgroupDirs | undefined> {
  let cg: Map<string, string>;
  try {
    cg = parseProcCgroup(await readFile(join(procOf(r), String(pid), 'cgroup'), 'utf8'));
  } catch {
    return undefined;
  }
  const root = cgroupOf(r);
  const v1 = new Map<string, string>();
  for (const [c, p] of cg) if (c !== '' && !c.startsWith('name=')) v1.set(c, join(root, c, p));
  const p2 = cg.get('');
  return { v1, v2: p2 === undefined ? [] : [join(root, p2), join(root, 'unified', p2)] };
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The first of `files` (v1 under controller `ctl`, v2 by name) that exists, v1 first. */
async function cgroupFile(d: CgroupDirs, ctl: string, v1File: string | undefined, v2File: string | undefined): Promise<string | undefined> {
  const v1 = d.v1.get(ctl);
  if (v1 !== undefined && v1File) {
    const t = await readText(join(v1, v1File));
    if (t !== undefined) return t;
  }
  if (v2File) {
    for (const dir of d.v2) {
      const t = await readText(join(dir, v2File));
      if (t !== undefined) return t;
    }
  }
  return undefined;
}

export interface CgroupCpu {
  /** CPUs the cgroup may run on (cpuset effective list), else the init's affinity; undefined if unknown. */
  cpus?: number[];
  /** CFS quota in CPUs (quota / period), undefined without a quota. */
  quotaCpus?: number;
  /** Total user and system time in seconds. */
  userSeconds?: number;
  systemSeconds?: number;
  /** Per host CPU (index = host cpu number) user and system seconds, when the kernel keeps them (v1). */
  perCpuUser?: number[];
  perCpuSystem?: number[];
}

const numbers = (t: string | undefined): number[] | undefined => t?.trim().split(/\s+/).filter(Boolean).map(Number);

/**
 * CPU limits and usage of host pid `pid`'s cgroup. v1: cpuset.effective_cpus, cpu.cfs_quota_us /
 * cpu.cfs_period_us, cpuacct.usage_percpu_{user,sys} or cpuacct.stat. v2: cpuset.cpus.effective,
 * cpu.max, cpu.stat user_usec/system_usec. The cpu list falls back to the init's Cpus_allowed_list.
 */
export async function cgroupCpuOf(pid: number, r: Roots = {}): Promise<CgroupCpu> {
  const out: CgroupCpu = {};
  const d = await cgroupDirsOf(pid, r);
  if (d) {
    const set = await cgroupFile(d, 'cpuset', 'cpuset.effective_cpus', 'cpuset.cpus.effective');
    if (set !== undefined && set.trim() !== '') out.cpus = parseCpuList(set);
    const q1 = await cgroupFile(d, 'cpu', 'cpu.cfs_quota_us', undefined);
    const p1 = await cgroupFile(d, 'cpu', 'cpu.cfs_period_us', undefined);
    if (q1 !== undefined && p1 !== undefined && Number(q1) > 0 && Number(p1) > 0) out.quotaCpus = Number(q1) / Number(p1);
    else {
      const max = (await cgroupFile(d, 'cpu', undefined, 'cpu.max'))?.trim().split(/\s+/);
      if (max && max[0] !== 'max' && Number(max[0]) > 0 && Number(max[1]) > 0) out.quotaCpus = Number(max[0]) / Number(max[1]);
    }
    const pu = numbers(await cgroupFile(d, 'cpuacct', 'cpuacct.usage_percpu_user', undefined));
    const ps = numbers(await cgroupFile(d, 'cpuacct', 'cpuacct.usage_percpu_sys', undefined));
    if (pu?.every(Number.isFinite) && ps?.every(Number.isFinite)) {
      out.perCpuUser = pu.map((ns) => ns / 1e9);
      out.perCpuSystem = ps.map((ns) => ns / 1e9);
      out.userSeconds = out.perCpuUser.reduce((a, b) => a + b, 0);
      out.systemSeconds = out.perCpuSystem.reduce((a, b) => a + b, 0);
    } else {
      const st1 = await cgroupFile(d, 'cpuacct', 'cpuacct.stat', undefined);
      const u1 = st1?.match(/^user (\d+)/m);
      const s1 = st1?.match(/^system (\d+)/m);
      if (u1 && s1) {
        out.userSeconds = Number(u1[1]) / clkTck();
        out.systemSeconds = Number(s1[1]) / clkTck();
      } else {
        const st2 = await cgroupFile(d, 'cpu', undefined, 'cpu.stat');
        const u2 = st2?.match(/^user_usec (\d+)/m);
        const s2 = st2?.match(/^system_usec (\d+)/m);
        if (u2 && s2) {
          out.userSeconds = Number(u2[1]) / 1e6;
          out.systemSeconds = Number(s2[1]) / 1e6;
        }
      }
    }
  }
  if (out.cpus === undefined || out.cpus.length === 0) {
    const st = await readText(join(procOf(r), String(pid), 'status'));
    const allowed = st?.match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
    if (allowed) out.cpus = parseCpuList(allowed);
  }
  return out;
}

/** Host thread ids of every task in host pid `pid`'s cgroup (v1 pids/cpu/cpuacct/memory tasks, v2 cgroup.threads). */
export async function cgroupTasksOf(pid: number, r: Roots = {}): Promise<number[] | undefined> {
  const d = await cgroupDirsOf(pid, r);
  if (!d) return undefined;
  for (const ctl of ['pids', 'cpu', 'cpuacct', 'memory']) {
    const t = await cgroupFile(d, ctl, 'tasks', undefined);
    if (t !== undefined) return t.split('\n').filter(Boolean).map(Number);
  }
  const t = await cgroupFile(d, '', undefined, 'cgroup.threads');
  return t?.split('\n').filter(Boolean).map(Number);
}

export interface TaskSample {
  /** Tasks (threads) in the container's cgroup. */
  total: number;
  /** In state R. */
  running: number;
  /** In state D (uninterruptible). */
  blocked: number;
  /** Sum of voluntary + involuntary context switches of the live tasks. */
  ctxt: number;
  /** Highest pid, as seen in the innermost pid namespace, of the live tasks. */
  lastPid: number;
}

/** State letter (field 3) of a /proc/<pid>/stat line. */
export function parseState(statText: string): string | undefined {
  return statText.slice(statText.lastIndexOf(')') + 2, statText.lastIndexOf(')') + 3) || undefined;
}

/** Counts, states and context switches of the container's tasks; a task that exits meanwhile is skipped. */
export async function sampleTasks(tids: number[], r: Roots = {}): Promise<TaskSample> {
  const s: TaskSample = { total: 0, running: 0, blocked: 0, ctxt: 0, lastPid: 0 };
  await Promise.all(
    tids.map(async (tid) => {
      const [stat, status] = await Promise.all([readText(join(procOf(r), String(tid), 'stat')), readText(join(procOf(r), String(tid), 'status'))]);
      if (stat === undefined || status === undefined) return;
      s.total++;
      const st = parseState(stat);
      if (st === 'R') s.running++;
      else if (st === 'D') s.blocked++;
      for (const m of status.matchAll(/^(?:voluntary|nonvoluntary)_ctxt_switches:\s*(\d+)/gm)) s.ctxt += Number(m[1]);
      const inner = parseNSpid(status).at(-1);
      if (inner !== undefined && inner > s.lastPid) s.lastPid = inner;
    }),
  );
  return s;
}

/** Per-device I/O of a cgroup, by "major:minor". */
export interface DeviceIo {
  readIos: number;
  writeIos: number;
  readBytes: number;
  writeBytes: number;
  discardIos: number;
  discardBytes: number;
}

/** v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6". */
export function parseIoStat(text: string): Map<string, DeviceIo> {
  const out = new Map<string, DeviceIo>();
  for (const line of text.split('\n')) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    if (!/^\d+:\d+$/.test(dev ?? '')) continue;
    const v = Object.fromEntries(kv.map((p) => p.split('=')).map(([k, n]) => [k, Number(n) || 0]));
    out.set(dev, { readBytes: v.rbytes ?? 0, writeBytes: v.wbytes ?? 0, readIos: v.rios ?? 0, writeIos: v.wios ?? 0, discardBytes: v.dbytes ?? 0, discardIos: v.dios ?? 0 });
  }
  return out;
}

/** v1 blkio "8:0 Read 123" tables (io_serviced and io_service_bytes) merged into DeviceIo. */
export function parseBlkio(serviced: string, bytes: string): Map<string, DeviceIo> {
  const out = new Map<string, DeviceIo>();
  const get = (dev: string) => {
    let d = out.get(dev);
    if (!d) out.set(dev, (d = { readIos: 0, writeIos: 0, readBytes: 0, writeBytes: 0, discardIos: 0, discardBytes: 0 }));
    return d;
  };
  const each = (text: string, f: (d: DeviceIo, op: string, n: number) => void) => {
    for (const line of text.split('\n')) {
      const m = line.trim().match(/^(\d+:\d+) (Read|Write|Discard) (\d+)$/);
      if (m) f(get(m[1]), m[2], Number(m[3]));
    }
  };
  each(serviced, (d, op, n) => (op === 'Read' ? (d.readIos += n) : op === 'Write' ? (d.writeIos += n) : (d.discardIos += n)));
  each(bytes, (d, op, n) => (op === 'Read' ? (d.readBytes += n) : op === 'Write' ? (d.writeBytes += n) : (d.discardBytes += n)));
  return out;
}

/** Block I/O of host pid `pid`'s cgroup: v1 blkio.throttle.*_recursive, else v2 io.stat; empty when unknown. */
export async function cgroupIoOf(pid: number, r: Roots = {}): Promise<Map<string, DeviceIo>> {
  const d = await cgroupDirsOf(pid, r);
  if (!d) return new Map();
  const serviced = await cgroupFile(d, 'blkio', 'blkio.throttle.io_serviced_recursive', undefined);
  const bytes = await cgroupFile(d, 'blkio', 'blkio.throttle.io_service_bytes_recursive', undefined);
  if (serviced !== undefined && bytes !== undefined) return parseBlkio(serviced, bytes);
  const io = await cgroupFile(d, 'io', undefined, 'io.stat');
  return io === undefined ? new Map() : parseIoStat(io);
}
