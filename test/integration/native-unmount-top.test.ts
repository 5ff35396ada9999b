// The delete path's unmounts in one thread-pool job (unmountTopAsync): in the order given, only a mount
// whose id is still the top one at its path is taken down; a mount stacked over it since, or one below
// it (the engine's), stays; a path with nothing of ours on it is skipped.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountIdAt, unmount, unmountTopAsync } from '../../native/index.ts';

const root = process.getuid?.() === 0;

function tmpfs(target: string): number {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'eci-top', target]);
  if (r.status !== 0) throw new Error(`mount ${target}: ${r.stderr}`);
  const id = mountIdAt(target);
  if (typeof id !== 'number') throw new Error(`no mount id at ${target}`);
  return id;
}

describe.skipIf(!root)(`unmountTopAsync${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-umtop-');
    for (const d of ['a', 'b', 'c']) mkdirSync(join(dir, d));
  });
  afterAll(() => {
    for (const d of ['a', 'b', 'c']) for (let i = 0; i < 4 && typeof mountIdAt(join(dir, d)) === 'number'; i++) unmount(join(dir, d), { detach: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes down exactly the mounts still on top, newest first, and leaves the rest', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((d) => join(dir, d));
    const engine = tmpfs(a); // not ours: below ours at the same path
    const ours1 = tmpfs(a);
    const ours2 = tmpfs(a); // stacked on ours1: must go first
    const oursB = tmpfs(b);
    const foreign = tmpfs(b); // stacked over ours since: ours is not on top, nothing at b is touched
    const r = await unmountTopAsync([{ path: a, id: ours2 }, { path: a, id: ours1 }, { path: b, id: oursB }, { path: c, id: 12345 }, { path: join(dir, 'gone'), id: 1 }], { detach: true });
    expect(r.map((x) => x.outcome)).toEqual(['unmounted', 'unmounted', 'absent', 'absent', 'absent']);
    expect(mountIdAt(a)).toBe(engine);
    expect(mountIdAt(b)).toBe(foreign);
    expect(mountIdAt(c)).toBeUndefined();
  });

  it('refuses a relative path before anything is unmounted', async () => {
    await expect(unmountTopAsync([{ path: 'rel', id: 1 }])).rejects.toThrow(/absolute/);
  });
});
