// The volume binds eci makes must be the very object the policy checked: a source replaced after
// the check (a symlink swapped in, another inode) fails with ESTALE and nothing stays mounted.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idmapBinds, idmapBindsAsync, isMountpoint, unmount, NativeError } from '../../native/index.ts';

const root = process.getuid?.() === 0;
const R = { hostID: 100000, size: 65536 };
const mountsUnder = (d: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(d)).length;

describe.skipIf(!root)(`idmapped binds of checked objects${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-binds-');
    mkdirSync(join(dir, 'vol'));
    mkdirSync(join(dir, 'secret'));
    writeFileSync(join(dir, 'vol/f'), 'ok');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('mounts the checked directory, idmapped', () => {
    const st = statSync(join(dir, 'vol'), { bigint: true });
    const target = join(dir, 't1');
    idmapBinds([{ source: join(dir, 'vol'), target, dev: st.dev, ino: st.ino, nosuid: true, nodev: true }], R, R);
    try {
      expect(isMountpoint(target)).toBe(true);
      expect(statSync(join(target, 'f')).uid).toBe(100000); // disk uid 0 seen through the container's mapping
      const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target)!;
      expect(line.split(' ')[5].split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'idmapped']));
    } finally {
      unmount(target, { detach: true });
    }
  });

  it('refuses a source swapped for a symlink or another directory after the check', () => {
    const st = statSync(join(dir, 'vol'), { bigint: true });
    renameSync(join(dir, 'vol'), join(dir, 'vol.orig'));
    symlinkSync(join(dir, 'secret'), join(dir, 'vol')); // the swap
    for (const [name, source] of [['symlink', join(dir, 'vol')], ['other dir', join(dir, 'secret')]] as const) {
      let err: unknown;
      try {
        idmapBinds([{ source, target: join(dir, `t-${name.replace(' ', '')}`), dev: st.dev, ino: st.ino }], R, R);
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(NativeError);
      expect((err as NativeError).code, name).toMatch(/ESTALE|ENOTDIR|EINVAL/);
    }
    expect(mountsUnder(dir)).toBe(0);
  });

  it('does the same off the event loop: the checked directory idmapped, a swapped source refused with nothing left', async () => {
    const st = statSync(join(dir, 'vol.orig'), { bigint: true });
    const target = join(dir, 't-async');
    await idmapBindsAsync([{ source: join(dir, 'vol.orig'), target, dev: st.dev, ino: st.ino, rdonly: true }], R, R);
    try {
      expect(isMountpoint(target)).toBe(true);
      expect(statSync(join(target, 'f')).uid).toBe(100000);
      const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target)!;
      expect(line.split(' ')[5].split(',')).toEqual(expect.arrayContaining(['ro', 'idmapped']));
    } finally {
      unmount(target, { detach: true });
    }
    // Two binds, the second one's source swapped: the first is undone too (all or nothing).
    const err = await idmapBindsAsync([
      { source: join(dir, 'vol.orig'), target: join(dir, 't-async1'), dev: st.dev, ino: st.ino },
      { source: join(dir, 'secret'), target: join(dir, 't-async2'), dev: st.dev, ino: st.ino },
    ], R, R).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as NativeError).code).toBe('ESTALE');
    expect(mountsUnder(dir)).toBe(0);
  });
});

describe.skipIf(!root)(`idmapped binds made at once on the thread pool${root ? '' : ' (skipped: needs root)'}`, () => {
  // Each call's user namespace is held by a child cloned on a pool thread; the children of calls made at
  // the same time get copies of each other's pipe ends. A holder told to exit by EOF could then wait for
  // another holder forever (two pool threads stuck in waitpid, the create timed out); a byte cannot.
  it('all of 16 concurrent calls finish, round after round, and each bind is mounted with its own range', async () => {
    const dir = mkdtempSync('/tmp/eci-binds-conc-');
    try {
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'src/f'), 'ok');
      const st = statSync(join(dir, 'src'), { bigint: true });
      for (let round = 0; round < 10; round++) {
        const targets = Array.from({ length: 16 }, (_, k) => join(dir, `t${round}-${k}`));
        let pending = targets.length;
        const calls = targets.map((target, k) => {
          const range = { hostID: 100000 + k * 65536, size: 65536 };
          return idmapBindsAsync([{ source: join(dir, 'src'), target, dev: st.dev, ino: st.ino, rdonly: true }], range, range).finally(() => pending--);
        });
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`round ${round}: ${pending} of 16 concurrent idmapBindsAsync calls still pending after 60 s`)), 60_000); });
        try {
          await Promise.race([Promise.all(calls), bound]);
        } finally {
          clearTimeout(timer);
        }
        targets.forEach((target, k) => expect(statSync(join(target, 'f')).uid, target).toBe(100000 + k * 65536));
        for (const target of targets) unmount(target, { detach: true });
      }
      expect(mountsUnder(dir)).toBe(0);
    } finally {
      // A failed round leaves its binds: never remove a tree with mounts in it.
      for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
        const at = line.split(' ')[4];
        if (at?.startsWith(`${dir}/`)) unmount(at, { detach: true });
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 15 * 60_000);
});
