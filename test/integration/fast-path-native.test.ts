// The native watcher's fast-path matcher (native/src/seccomp.cc FastMatch, through the addon's
// test-only fastMatch) against the vetter's own verdict for the same generated input: wherever the
// C matcher matches, the actor performs, with exactly the argv the actor's path hands the performer;
// and it matches exactly where the TypeScript rule table does. Needs the built addon, not root.
import { describe, expect, it } from 'vitest';
import { compileFastTable, fastHelperArgs, matchFast } from '../../actors/vetter/fast-path.ts';
import { decide, type VetRequest } from '../../actors/vetter/decide.ts';
import { RATE_BURST, RATE_PER_SECOND } from '../../actors/vetter.actor.ts';
import { loadAddon } from '../../native/addon.ts';
import { genNotif, prng } from '../helpers/vet-gen.ts';

let addon: ReturnType<typeof loadAddon> | undefined;
try {
  addon = loadAddon();
} catch {
  addon = undefined;
}

describe.skipIf(!addon)(`the native fast-path matcher${addon ? '' : ' (skipped: the addon is not built)'}`, () => {
  const table = compileFastTable({ ids: [7, 9], roDevs: ['0:33'], volumes: null }, { ratePerSecond: RATE_PER_SECOND, burst: RATE_BURST });
  const ranges = { uid: { hostID: 100000, size: 65536 }, gid: { hostID: 100000, size: 65536 } };

  it('agrees with the vetter and the TypeScript table on every generated input (property)', () => {
    const seed = Number(process.env.ECI_PROP_SEED ?? 1717);
    const rnd = prng(seed);
    const hits = new Map<string, number>();
    for (let i = 0; i < 20000; i++) {
      const n = genNotif(rnd);
      const id = BigInt(i) * 0x100000001n;
      const c = addon!.seccomp.fastMatch(table, { ...n, id });
      const at = `seed ${seed} input ${i}: ${JSON.stringify(n, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`;
      const req: VetRequest = { container: 'c', pid: n.pid, syscall: n.syscall, args: n.args, strings: n.strings, ...ranges };
      const ts = matchFast(table, req, n.stringIssues);
      expect(c?.rule, at).toBe(ts?.rule.name);
      if (!c || !ts) continue;
      hits.set(c.rule, (hits.get(c.rule) ?? 0) + 1);
      const v = decide(req);
      expect(v.kind, at).toBe('perform');
      if (v.kind === 'perform') expect(fastHelperArgs(table, v.perform as typeof ts.op, n.pid, id, 4), at).toEqual(c.argv);
    }
    for (const r of table.rules) expect(hits.get(r.name) ?? 0, r.name).toBeGreaterThan(200);
  });

  it('refuses a malformed table', () => {
    expect(() => addon!.seccomp.fastMatch({ ...table, ratePerSecond: 0 }, { id: 1n, pid: 1, syscall: 'umount2', args: [0n, 0n], strings: { target: '/m' } })).toThrow(/ratePerSecond/);
    expect(() => addon!.seccomp.fastMatch({ ...table, rules: [{ ...table.rules[0]!, flagsArg: 9 }] }, { id: 1n, pid: 1, syscall: 'umount2', args: [0n, 0n], strings: { target: '/m' } })).toThrow(/bad rule/);
  });
});
