// Effects for the procfs emulation: the memory figures of a container's cgroup (for meminfo).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupOf, parseProcCgroup, procOf, readText, type Roots } from './container-info.ts';
import type { MemoryStat } from './render.ts';

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
  /** From memory.stat, when it can be read. */
  stat?: MemoryStat;
}

/** memory.stat keys of each MemoryStat field: v1 (hierarchical total_* first), then v2. */
const STAT_KEYS: Record<keyof MemoryStat, { v1: string[]; v2: string }> = {
  cache: { v1: ['total_cache', 'cache'], v2: 'file' },
  anon: { v1: ['total_rss', 'rss'], v2: 'anon' },
  shmem: { v1: ['total_shmem', 'shmem'], v2: 'shmem' },
  mapped: { v1: ['total_mapped_file', 'mapped_file'], v2: 'file_mapped' },
  dirty: { v1: ['total_dirty', 'dirty'], v2: 'file_dirty' },
  writeback: { v1: ['total_writeback', 'writeback'], v2: 'file_writeback' },
  activeAnon: { v1: ['total_active_anon', 'active_anon'], v2: 'active_anon' },
  inactiveAnon: { v1: ['total_inactive_anon', 'inactive_anon'], v2: 'inactive_anon' },
  activeFile: { v1: ['total_active_file', 'active_file'], v2: 'active_file' },
  inactiveFile: { v1: ['total_inactive_file', 'inactive_file'], v2: 'inactive_file' },
  unevictable: { v1: ['total_unevictable', 'unevictable'], v2: 'unevictable' },
  slabReclaimable: { v1: [], v2: 'slab_reclaimable' },
  slabUnreclaimable: { v1: [], v2: 'slab_unreclaimable' },
  kernelStack: { v1: [], v2: 'kernel_stack' },
  pageTables: { v1: [], v2: 'pagetables' },
  percpu: { v1: [], v2: 'percpu' },
  anonHuge: { v1: ['total_rss_huge', 'rss_huge'], v2: 'anon_thp' },
  shmemHuge: { v1: [], v2: 'shmem_thp' },
  fileHuge: { v1: [], v2: 'file_thp' },
};

/** A cgroup's memory.stat text (bytes) as MemoryStat; a key the kernel does not keep counts 0. */
export function parseMemoryStat(text: string, version: 1 | 2): MemoryStat {
  const kv = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && /^\d+$/.test(v ?? '')) kv.set(k, Number(v));
  }
  const out = {} as MemoryStat;
  for (const [field, keys] of Object.entries(STAT_KEYS) as [keyof MemoryStat, { v1: string[]; v2: string }][]) {
    const names = version === 1 ? keys.v1 : [keys.v2];
    out[field] = names.map((n) => kv.get(n)).find((v) => v !== undefined) ?? 0;
  }
  return out;
}

async function statOf(dir: string, version: 1 | 2): Promise<MemoryStat | undefined> {
  const t = await readText(join(dir, 'memory.stat'));
  return t === undefined ? undefined : parseMemoryStat(t, version);
}

/**
 * The memory limit, usage and memory.stat of host pid `pid`'s cgroup: the v1 memory controller when
 * the pid is in one (memory.limit_in_bytes / memory.usage_in_bytes), else v2 (memory.max /
 * memory.current) at the cgroup root or, on a hybrid host, under 'unified'. Empty when unknown.
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
    if (limitBytes !== undefined || usageBytes !== undefined) return { limitBytes, usageBytes, stat: await statOf(dir, 1) };
  }
  const v2 = cg.get('');
  if (v2 !== undefined) {
    for (const base of [root, join(root, 'unified')]) {
      const dir = join(base, v2);
      const limitBytes = await readBytes(join(dir, 'memory.max'));
      const usageBytes = await readBytes(join(dir, 'memory.current'));
      if (limitBytes !== undefined || usageBytes !== undefined) return { limitBytes, usageBytes, stat: await statOf(dir, 2) };
    }
  }
  return {};
}
