import { describe, expect, it } from 'vitest';
import { compileFastTable, fastHelperArgs, FAST_RULES, matchFast } from '../../actors/vetter/fast-path.ts';
import { decide, MS, type VetRequest } from '../../actors/vetter/decide.ts';
import { performerOf, type PerformNative } from '../../actors/vetter/registry.ts';
import { RATE_BURST, RATE_PER_SECOND } from '../../actors/vetter.actor.ts';
import { asHelperArgs, type MountAsOptions, type UmountAsOptions } from '../../native/seccomp-agent.ts';
import { genNotif, prng } from '../helpers/vet-gen.ts';

const protection = { ids: [101, 102], roDevs: ['0:52', '8:1'], volumes: null };
const table = compileFastTable(protection, { ratePerSecond: RATE_PER_SECOND, burst: RATE_BURST });
const ranges = { uid: { hostID: 100000, size: 65536 }, gid: { hostID: 100000, size: 65536 } };

/** The argv the actor's path hands the performer for a verdict (notify-feed.ts -> performer.run -> seccomp.ts). */
async function actorArgs(req: VetRequest, notifId: bigint): Promise<string[] | undefined> {
  const v = decide(req);
  if (v.kind !== 'perform') return undefined;
  let argv: string[] | undefined;
  const native = {
    mountAs: async (o: MountAsOptions) => { argv = asHelperArgs('mount-as', o, 4); },
    umountAs: async (o: UmountAsOptions) => { argv = asHelperArgs('umount-as', o, 4); },
    chmodAs: async () => {},
  } as unknown as PerformNative;
  await performerOf(v.perform).run(native, v.perform, { pid: req.pid, notify: { fd: 9, id: notifId, answer: true }, protection });
  return argv;
}

describe('the native fast path rule table', () => {
  it('has the three rules of issue 17, compiled with the container\'s protection and the pacer\'s budget', () => {
    expect(table.rules.map((r) => r.name)).toEqual(['tmpfs-mount', 'remount', 'umount']);
    expect(table).toMatchObject({ protect: [101, 102], roDevs: ['0:52', '8:1'], ratePerSecond: RATE_PER_SECOND, burst: RATE_BURST });
  });

  it('matches the common safe cases and leaves the rest to the actor', () => {
    const m = (syscall: string, flags: bigint, strings: Record<string, string | null>) =>
      matchFast(table, { pid: 7, syscall, args: syscall === 'mount' ? [0n, 0n, 0n, flags] : [0n, flags], strings }, { data: 'null', source: 'null', fstype: 'null' })?.rule.name;
    expect(m('mount', 0n, { source: 'tmpfs', target: '/mnt', fstype: 'tmpfs', data: 'size=1m' })).toBe('tmpfs-mount');
    expect(m('mount', MS.REMOUNT | MS.RDONLY, { source: null, target: '/mnt', fstype: null, data: null })).toBe('remount');
    expect(m('umount2', 2n, { target: '/mnt' })).toBe('umount');
    expect(m('mount', 0n, { source: 'proc', target: '/p', fstype: 'proc', data: null })).toBeUndefined(); // gets eci's files: the actor's path
    expect(m('mount', MS.BIND, { source: '/a', target: '/b', fstype: null, data: null })).toBeUndefined();
    expect(m('mount', MS.MOVE, { source: '/a', target: '/b', fstype: 'tmpfs', data: null })).toBeUndefined();
    expect(m('mount', MS.REMOUNT, { source: null, target: '/m', fstype: null, data: 'uid=100000' })).toBeUndefined(); // ids translated by the actor
    expect(m('umount2', 0n, { target: '/mnt/\u00e9' })).toBeUndefined(); // not plain ASCII: in doubt
    expect(matchFast(table, { pid: 7, syscall: 'umount2', args: [0n, 0n], strings: { target: null } }, { target: 'unreadable' })).toBeUndefined();
    expect(matchFast(table, { pid: 0, syscall: 'umount2', args: [0n, 0n], strings: { target: '/m' } })).toBeUndefined();
  });

  it('gives, for every generated input it matches, the actor\'s verdict and the very argv the actor\'s path runs (property)', async () => {
    const seed = Number(process.env.ECI_PROP_SEED ?? 17);
    const rnd = prng(seed);
    const hits = new Map<string, number>();
    let misses = 0;
    for (let i = 0; i < 20000; i++) {
      const n = genNotif(rnd);
      const req: VetRequest = { container: 'c', pid: n.pid, syscall: n.syscall, args: n.args, strings: n.strings, ...ranges };
      const m = matchFast(table, req, n.stringIssues);
      const at = `seed ${seed} input ${i}: ${JSON.stringify(n, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`;
      if (!m) {
        misses++;
        continue;
      }
      hits.set(m.rule.name, (hits.get(m.rule.name) ?? 0) + 1);
      const v = decide(req);
      expect(v.kind, at).toBe('perform');
      if (v.kind === 'perform') expect(m.op, at).toEqual(v.perform);
      expect(fastHelperArgs(table, m.op, n.pid, BigInt(i), 4), at).toEqual(await actorArgs(req, BigInt(i)));
    }
    // The generator reaches every rule and plenty of calls that must take the actor's path.
    for (const r of FAST_RULES) expect(hits.get(r.name) ?? 0, r.name).toBeGreaterThan(200);
    expect(misses).toBeGreaterThan(5000);
  });
});
