// The last word on a range before a container runs in it: whatever decided it (the allocator, a
// restored record), the manager applies only a whole range of its own pool that no live container has.
import type { IdRange } from '../../statecharts/events.ts';
import type { IdPool } from './subid.ts';

/** What is wrong with giving `r` to a container, or undefined when nothing is. */
export function rangeProblem(r: { uid: IdRange; gid: IdRange }, pool: IdPool, live: readonly (IdRange | undefined)[]): string | undefined {
  const end = pool.base + pool.size * pool.count;
  for (const [what, x] of [['uid', r.uid], ['gid', r.gid]] as const) {
    if (!Number.isSafeInteger(x.hostID) || !Number.isSafeInteger(x.size)) return `${what} range is not numeric`;
    if (x.size !== pool.size) return `${what} range is ${x.size} wide, not ${pool.size}`;
    if (x.hostID < pool.base || x.hostID + x.size > end || (x.hostID - pool.base) % pool.size !== 0) {
      return `${what} range ${x.hostID}..${x.hostID + x.size - 1} is not a range of the pool ${pool.base}..${end - 1}`;
    }
  }
  if (r.uid.hostID !== r.gid.hostID) return 'uid and gid ranges differ';
  const clash = live.find((l) => l && l.hostID < r.uid.hostID + r.uid.size && r.uid.hostID < l.hostID + l.size);
  if (clash) return `${r.uid.hostID}..${r.uid.hostID + r.uid.size - 1} overlaps a live container's range`;
  return undefined;
}
