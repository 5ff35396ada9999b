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
