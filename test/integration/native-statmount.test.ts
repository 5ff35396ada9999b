// The rootfs plan from one mount's line (statmount, native mountInfoAt) is the plan the whole mount
// table gives: an overlay (a layer path with a space, escaped as mountinfo does), a plain
// directory (no mount: a bind plan), a tmpfs.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountInfoAt, unmount } from '../../native/index.ts';
import { mountAt, parseMountInfo } from '../../actors/mountinfo.ts';
import { planRootfs } from '../../actors/rootfs.ts';

const root = process.getuid?.() === 0;
const table = () => readFileSync('/proc/self/mountinfo', 'utf8');

describe.skipIf(!root)(`one mount's line instead of the mount table${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  const mounted: string[] = [];
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-statmount-');
    for (const d of ['lower a', 'lower b', 'upper', 'work', 'merged', 'plain', 'tmp']) mkdirSync(join(dir, d));
    const lower = [join(dir, 'lower a'), join(dir, 'lower b')].join(':');
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`, join(dir, 'merged')]);
    mounted.push(join(dir, 'merged'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', join(dir, 'tmp')]);
    mounted.push(join(dir, 'tmp'));
  });
  afterAll(() => {
    for (const m of mounted.reverse()) unmount(m, { detach: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same overlay plan as the whole table', () => {
    const one = mountInfoAt(join(dir, 'merged'));
    if (one === null) return; // a kernel without statmount's options: the manager reads the table
    const plan = planRootfs(join(dir, 'merged'), one);
    expect(plan).toEqual(planRootfs(join(dir, 'merged'), table()));
    expect(plan.kind).toBe('overlay');
    expect(plan.kind === 'overlay' && plan.lower).toEqual([join(dir, 'lower a'), join(dir, 'lower b')]);
  });

  it('gives nothing for a directory that is no mount root (a bind plan, as from the table)', () => {
    expect(mountInfoAt(join(dir, 'plain'))).toBe('');
    expect(planRootfs(join(dir, 'plain'), '')).toEqual(planRootfs(join(dir, 'plain'), table()));
  });

  it('describes another filesystem as the table does (type, mount point, super options)', () => {
    const one = mountInfoAt(join(dir, 'tmp'));
    if (one === null) return;
    const a = mountAt(parseMountInfo(one), join(dir, 'tmp'))!;
    const b = mountAt(parseMountInfo(table()), join(dir, 'tmp'))!;
    expect([a.fsType, a.mountPoint, a.superOptions, a.root]).toEqual([b.fsType, b.mountPoint, b.superOptions, b.root]);
  });
});
