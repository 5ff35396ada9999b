// Effects for the procfs emulation: the cpu, tasks and block I/O files of a container's cgroup (for
// cpuinfo, stat, loadavg and diskstats), v1 controllers first (Docker on a hybrid host), then v2.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupOf, clkTck, parseProcCgroup, procOf, readText, type Roots } from './container-info.ts';
import type { DiskIo } from './render.ts';

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

/** The first of `files` (v1 under controller `ctl`, v2 by name) that exists, v1 first. */
export async function cgroupFile(d: CgroupDirs, ctl: string, v1File: string | undefined, v2File: string | undefined): Promise<string | undefined> {
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

/** Per-device I/O of a cgroup, by "major:minor" (the renderer's DiskIo). */
export type DeviceIo = DiskIo;

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
