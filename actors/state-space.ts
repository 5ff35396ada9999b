// Creating a container writes state (range and container records in the JetStream store, events
// in the outbox), all under the state dir. With the disk full those writes would fail halfway, so
// a create is refused up front, with one line, while less than MIN_FREE_BYTES are free there.
import * as fs from 'node:fs';
import { EciError } from './errors.ts';

export const MIN_FREE_BYTES = 1 << 20;

type StatFs = (path: string) => { bavail: number | bigint; bsize: number | bigint };
// statfs is newer than the rest of node:fs (Node 18.15): looked up, not imported, so a runtime
// without it loads this module and skips the check.
const statfs = (fs as unknown as { statfsSync?: StatFs }).statfsSync;

/** Free bytes (for unprivileged writers) on the filesystem of `dir`; undefined if unknown. */
export function freeBytes(dir: string, stat: StatFs | null | undefined = statfs): number | undefined {
  if (!stat) return undefined;
  const s = stat(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws one line saying what is refused (`refusing`) while the state dir is (nearly) full. */
export function assertStateSpace(dir: string, refusing = 'refusing to create a container until space is freed', stat: StatFs | null | undefined = statfs): void {
  let free: number | undefined;
  try {
    free = freeBytes(dir, stat);
  } catch (e) {
    throw new EciError('ESTATE', `cannot check the state dir ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): ${refusing}`);
  }
  if (free !== undefined && free < MIN_FREE_BYTES) {
    throw new EciError('ENOSPC', `the state dir ${dir} is full (${Math.floor(free / 1024)} KiB free): ${refusing}`);
  }
}
