// Effects for the procfs emulation: the memory figures of a container's cgroup (for meminfo).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupOf, parseProcCgroup, procOf, type Roots } from './container-info.ts';

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
