// Effects for the procfs emulation: which container a host pid belongs to (by pid namespace), when
// that container's init started, and its cgroup memory limit/usage. Host paths only; no namespaces
// entered. Every function takes a `proc`/`cgroupRoot` so tests can point it at a fake tree.
import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
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
