// Effects for the procfs emulation, about processes: which container a host pid belongs to (by pid
// namespace or cgroup anchor), when that container's init started, and what its tasks are doing. The
// cgroup's own files are read in cgroup-files.ts (cpu, tasks, I/O) and cgroup-memory.ts. Host paths
// only; no namespaces entered. Every function takes a `proc`/`cgroupRoot` so tests can point it at a
// fake tree.
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


export const procOf = (r: Roots): string => r.proc ?? '/proc';
export const cgroupOf = (r: Roots): string => r.cgroupRoot ?? '/sys/fs/cgroup';

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

/** A file's text, undefined when it cannot be read (e.g. the process is gone). */
export async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

// ---------- what a container's tasks are doing (stat, loadavg) ----------

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
