// planOrphans: which mounts a restarted manager takes down, from captured mountinfo text; adoptHostView:
// the view a create in flight had mounted, added to the record it revives.
import { describe, expect, it } from 'vitest';
import { adoptHostView, HOST_VIEW_FSTYPE, planOrphans } from '../../actors/reconcile.ts';

const C = '/run/eci/containers';
const line = (id: number, parent: number, dev: string, mp: string, fs: string, src = 'none') => `${id} ${parent} ${dev} / ${mp} rw,relatime shared:1 - ${fs} ${src} rw`;

describe('planOrphans', () => {
  const info = [
    line(20, 1, '0:30', '/', 'ext4', '/dev/sda1'),
    line(100, 20, '0:80', '/var/lib/docker/overlay2/aaa/merged', 'overlay'), // the engine's overlay
    line(101, 20, '0:81', `${C}/gone/rootfs`, 'overlay'), // eci's, container unknown
    line(102, 100, '0:81', '/var/lib/docker/overlay2/aaa/merged', 'overlay'), // eci's copy on the engine path
    line(103, 20, '0:30', `${C}/gone/binds/0`, 'ext4', '/dev/sda1'), // an idmapped volume of it
    line(104, 20, '0:82', `${C}/live/rootfs`, 'overlay'), // a known container: untouched
    line(105, 20, '0:30', `${C}/plain/rootfs`, 'ext4', '/dev/sda1'), // unknown, bind rootfs
    line(106, 20, '0:30', '/srv/data', 'ext4', '/dev/sda1'), // same dev as the bind rootfs: not ours
  ].join('\n');

  it('takes the unknown containers\' mounts and their overlay copies, newest first, and nothing else', () => {
    const p = planOrphans(info, C, ['gone', 'live', 'plain', 'empty'], new Set(['live']));
    expect(p.mounts.map((m) => m.id)).toEqual([105, 103, 102, 101]);
    expect(p.ids).toEqual(['empty', 'gone', 'plain']);
  });

  it('takes an orphan\'s host view on the engine path (found by its source), not a known container\'s', () => {
    const views = [
      info,
      line(120, 20, '0:83', `${C}/viewed/rootfs`, 'overlay'),
      line(121, 20, '0:84', '/var/lib/docker/overlay2/bbb/merged', 'overlay'), // the engine's overlay
      line(122, 121, '0:85', '/var/lib/docker/overlay2/bbb/merged', 'fuse.eci-rootfs', `${C}/viewed/rootfs`),
      line(123, 20, '0:86', '/var/lib/docker/overlay2/ccc/merged', 'fuse.eci-rootfs', `${C}/live/rootfs`),
    ].join('\n');
    const p = planOrphans(views, C, ['viewed', 'live'], new Set(['live']));
    expect(p.mounts.map((m) => m.id)).toEqual([122, 120, 105, 103, 102, 101]);
    expect(p.ids).toEqual(['gone', 'plain', 'viewed']);
  });

  it('plans nothing when every container is known', () => {
    const p = planOrphans(info, C, ['gone', 'live', 'plain'], new Set(['gone', 'live', 'plain']));
    expect(p).toEqual({ ids: [], mounts: [] });
  });

  it('does not match a sibling dir that merely shares the prefix', () => {
    const p = planOrphans(line(110, 20, '0:90', '/run/eci/containers-old/x/rootfs', 'overlay'), C, [], new Set());
    expect(p.mounts).toEqual([]);
  });
});

describe('adoptHostView', () => {
  const R = { hostID: 100000, size: 65536 };
  const base = { id: 'c', bundle: '/b', index: 0, uid: R, gid: R, rootfs: `${C}/c/rootfs`, mounts: [{ path: `${C}/c/rootfs`, id: 130 }], runcCreated: false };
  const info = [
    line(20, 1, '0:30', '/', 'ext4', '/dev/sda1'),
    line(130, 20, '0:90', `${C}/c/rootfs`, 'overlay'),
    line(131, 20, '0:91', '/var/lib/docker/overlay2/ccc/merged', 'overlay'), // the engine's own
    line(132, 131, '0:92', '/var/lib/docker/overlay2/ccc/merged', HOST_VIEW_FSTYPE, `${C}/c/rootfs`),
    line(133, 20, '0:93', '/var/lib/docker/overlay2/ddd/merged', HOST_VIEW_FSTYPE, `${C}/d/rootfs`), // another container's
  ].join('\n');

  it('adds the view of a record whose view was still pending, and ends the wait', () => {
    const ctx = adoptHostView({ ...base, viewPending: true, leaving: 'stopped' }, info, `${C}/c/rootfs`);
    expect(ctx.mounts).toEqual([{ path: `${C}/c/rootfs`, id: 130 }, { path: '/var/lib/docker/overlay2/ccc/merged', id: 132 }]);
    expect(ctx.viewPending).toBeUndefined();
    expect(ctx.leaving).toBeUndefined();
  });

  it('leaves a record alone whose view is recorded or was never pending, and adds nothing that is not mounted', () => {
    expect(adoptHostView(base, info, `${C}/c/rootfs`)).toBe(base);
    const recorded = { ...base, viewPending: true, mounts: [...base.mounts, { path: '/var/lib/docker/overlay2/ccc/merged', id: 132 }] };
    expect(adoptHostView(recorded, info, `${C}/c/rootfs`).mounts).toEqual(recorded.mounts);
    expect(adoptHostView({ ...base, viewPending: true }, info, `${C}/e/rootfs`).mounts).toEqual(base.mounts);
  });
});
