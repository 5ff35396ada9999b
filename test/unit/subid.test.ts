import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { overlapping, parseSubid, reservePool, SubidGuard, withReservation } from '../../actors/manager/subid.ts';

const pool = { base: 1_000_000_000, size: 65536, count: 4 };

describe('subordinate id reservation', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
  const file = (text?: string) => {
    const d = mkdtempSync('/tmp/eci-subid-');
    dirs.push(d);
    const p = join(d, 'subuid');
    if (text !== undefined) writeFileSync(p, text, { mode: 0o644 });
    return p;
  };

  it('parses owner:start:count lines and skips the rest', () => {
    expect(parseSubid('# c\nalice:100000:65536\n\nbad line\nbob:165536:65536')).toEqual([
      { owner: 'alice', start: 100000, count: 65536, line: 2 },
      { owner: 'bob', start: 165536, count: 65536, line: 5 },
    ]);
  });

  it('finds entries of other owners that meet the pool, at either edge', () => {
    const e = parseSubid([
      'below:999934464:65536', // ends at 999999999: just below
      'edge:999934465:65536', // last id 1000000000: meets
      'inside:1000100000:10',
      'after:1000262144:65536', // starts at the pool's end: outside
      'eci:1000000000:262144', // eci's own line never counts
    ].join('\n'));
    expect(overlapping(e, pool).map((x) => x.owner)).toEqual(['edge', 'inside']);
  });

  it('adds eci\'s line once, keeping the rest of the file', () => {
    const t = withReservation('alice:100000:65536', pool);
    expect(t).toBe('alice:100000:65536\neci:1000000000:262144\n');
    expect(withReservation(t, pool)).toBe(t);
  });

  it('records the pool in a file (kept mode, created if missing) and refuses an overlapping user by name', () => {
    const p = file('alice:100000:65536\n');
    reservePool(p, pool, 'uid');
    expect(readFileSync(p, 'utf8')).toBe('alice:100000:65536\neci:1000000000:262144\n');
    expect(statSync(p).mode & 0o777).toBe(0o644);
    const q = file();
    reservePool(q, pool, 'gid');
    expect(readFileSync(q, 'utf8')).toBe('eci:1000000000:262144\n');
    const r = file('mallory:1000065536:65536\n');
    expect(() => reservePool(r, pool, 'uid')).toThrow(/line 1 gives mallory uids 1000065536\.\.1000131071, which overlap eci's id pool 1000000000\.\.1000262143/);
    expect(readFileSync(r, 'utf8')).toBe('mallory:1000065536:65536\n'); // nothing written on a refusal
  });
});

describe('SubidGuard', () => {
  it('re-reads a file only when it changed, and refuses once a user is given ids in the pool', () => {
    const d = mkdtempSync('/tmp/eci-subid-');
    try {
      const uid = join(d, 'subuid');
      const gid = join(d, 'subgid');
      writeFileSync(uid, 'alice:100000:65536\n');
      const g = new SubidGuard(pool, [[uid, 'uid'], [gid, 'gid']]);
      g.reserve();
      g.check();
      writeFileSync(uid, `${readFileSync(uid, 'utf8')}bob:1000000000:1\n`);
      utimesSync(uid, new Date(), new Date(Date.now() + 5000)); // a new mtime even on a coarse clock
      expect(() => g.check()).toThrow(/gives bob uids 1000000000\.\.1000000000/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('shadow-utils lock', () => {
  it('waits for a live holder, takes over a dead one, and leaves no lock or temp file', async () => {
    const { spawn } = await import('node:child_process');
    const { existsSync, readdirSync } = await import('node:fs');
    const { withShadowLock } = await import('../../actors/manager/subid.ts');
    const d = mkdtempSync('/tmp/eci-subid-');
    try {
      const f = join(d, 'subuid');
      writeFileSync(f, '');
      // A live holder (another process) past the wait: refused with its pid.
      const live = spawn('sleep', ['30']);
      writeFileSync(`${f}.lock`, String(live.pid));
      try {
        expect(() => withShadowLock(f, () => 1, 200)).toThrow(`${f}.lock is held by pid ${live.pid}`);
      } finally {
        live.kill();
      }
      // A dead holder: taken over.
      const dead = spawn('sleep', ['0']);
      await new Promise((r) => dead.on('exit', r));
      writeFileSync(`${f}.lock`, String(dead.pid));
      expect(withShadowLock(f, () => existsSync(`${f}.lock`))).toBe(true);
      expect(readdirSync(d)).toEqual(['subuid']);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
