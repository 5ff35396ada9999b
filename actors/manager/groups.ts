// Containers that share namespaces (Docker's `container:` modes, a pod's sandbox and its containers)
// must share one user namespace, hence one uid/gid range: they form a group. The range is allocated
// once, under the group's key (the first member's id), and freed only when the last member leaves.
// Pure bookkeeping: the manager asks the allocator and keeps the members in each container's record.
import type { IdRange } from '../../statecharts/events.ts';

export interface GroupRange { index: number; uid: IdRange; gid: IdRange }

interface Group { members: Set<string>; range?: GroupRange }

/** What a member's leaving did: the group's key, whether it was the last, and the range it held. */
export interface Left { key: string; last: boolean; range?: GroupRange }

export class RangeGroups {
  private readonly groups = new Map<string, Group>();
  private readonly memberOf = new Map<string, string>();

  /**
   * The key a container that joins nobody starts its group under: its own id, unless a live group
   * still carries that name (its first member is gone, others run, and the id was reused), so that
   * the allocator never hands the new container the old group's range.
   */
  keyFor(id: string): string {
    if (!this.groups.has(id)) return id;
    for (let n = 2; ; n++) if (!this.groups.has(`${id}~${n}`)) return `${id}~${n}`;
  }

  /** Adds `id` to group `key` (made if new); a container is in one group at most. */
  join(key: string, id: string, range?: GroupRange): void {
    const cur = this.memberOf.get(id);
    if (cur !== undefined && cur !== key) throw new Error(`container ${id} is already in group ${cur}`);
    const g = this.groups.get(key) ?? { members: new Set<string>() };
    g.members.add(id);
    if (range && !g.range) g.range = range;
    this.groups.set(key, g);
    this.memberOf.set(id, key);
  }

  /** Records the range allocated for group `key` (its first member's allocation). */
  setRange(key: string, range: GroupRange): void {
    const g = this.groups.get(key);
    if (g) g.range = range;
  }

  /** Removes `id` from its group; the group is gone with its last member. Idempotent (undefined: in none). */
  leave(id: string): Left | undefined {
    const key = this.memberOf.get(id);
    if (key === undefined) return undefined;
    this.memberOf.delete(id);
    const g = this.groups.get(key)!;
    g.members.delete(id);
    if (g.members.size) return { key, last: false, range: g.range };
    this.groups.delete(key);
    return { key, last: true, range: g.range };
  }

  /** The key of `id`'s group. */
  groupOf(id: string): string | undefined {
    return this.memberOf.get(id);
  }

  /** The range of group `key`, once allocated. */
  range(key: string): GroupRange | undefined {
    return this.groups.get(key)?.range;
  }

  /** The members of group `key`, in the order they joined. */
  members(key: string): string[] {
    return [...(this.groups.get(key)?.members ?? [])];
  }

  /** How many containers group `key` holds (0: no such group). */
  count(key: string): number {
    return this.groups.get(key)?.members.size ?? 0;
  }

  /** Whether some container still holds group `key` (its range must stay allocated). */
  live(key: string): boolean {
    return this.groups.has(key);
  }
}
