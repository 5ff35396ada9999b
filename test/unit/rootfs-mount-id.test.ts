// The rootfs bookkeeping asks the kernel for one mount id per path (statx) instead of reading the
// whole mount table each time (it grows with every container: O(containers) per create otherwise),
// and reads mountinfo only where the kernel cannot tell.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mountBinds, mountRootfs, unmountRootfs, unmountRootfsAsync, type RootfsNative } from '../../actors/rootfs.ts';

const range = { hostID: 1879048192, size: 65536 };

function fakeNative(o: { statx: boolean }) {
  const top = new Map<string, number[]>();
  let next = 100;
  const push = (p: string) => top.set(p, [...(top.get(p) ?? []), next++]);
  const native: RootfsNative = {
    async mountRootfsOverlay(x) { push(x.target); },
    async mountRootfsBind(x) { push(x.target); },
    async mountHostView(x) { push(x.target); },
    unmount(t) { top.get(t)?.pop(); },
    isMountpoint: (p) => (top.get(p)?.length ?? 0) > 0,
    bindMount(_s, t) { push(t); },
    idmapBinds(binds) { for (const b of binds) push(b.target); },
    mountIdAt: (p) => (o.statx ? top.get(p)?.at(-1) : null),
  };
  return { native, top };
}
const noTable = () => { throw new Error('mountinfo read'); };

describe('rootfs mount ids', () => {
  it('mounts, records and unmounts by statx mount id without reading mountinfo', async () => {
    const { native, top } = fakeNative({ statx: true });
    const made = await mountRootfs(native, { kind: 'bind', source: '/img' }, '/run/eci/containers/c/rootfs', range, range, noTable);
    expect(made).toEqual([{ path: '/run/eci/containers/c/rootfs', id: 100 }]);
    const binds = mountBinds(native, [{ index: 0, source: '/v', target: '/run/eci/containers/c/binds/0', dev: 1n, ino: 2n, rdonly: false, nosuid: true, nodev: true }], range, range, noTable);
    expect(binds).toEqual([{ path: '/run/eci/containers/c/binds/0', id: 101 }]);
    // Something stacked over our bind since: it is not ours, it stays.
    top.get('/run/eci/containers/c/binds/0')!.push(999);
    expect(unmountRootfs(native, [...made, ...binds], noTable)).toEqual([]);
    expect(top.get('/run/eci/containers/c/rootfs')).toEqual([]);
    expect(top.get('/run/eci/containers/c/binds/0')).toEqual([101, 999]);
  });

  it('unmounts a host view whose server is gone (statx fails with ENOTCONN) by its id in mountinfo', async () => {
    const { native, top } = fakeNative({ statx: true });
    const d = mkdtempSync(join(tmpdir(), 'eci-rootfs-ids-')); // eci's work dir is made beside the upper
    const merged = join(d, 'merged');
    try {
      const made = await mountRootfs(native, { kind: 'overlay', engine: merged, base: d, lower: [join(d, 'l')], upper: join(d, 'u'), work: join(d, 'w') }, '/run/eci/containers/c/rootfs', range, range, noTable);
      expect(made).toEqual([{ path: '/run/eci/containers/c/rootfs', id: 100 }, { path: merged, id: 101 }]);
      const statx = native.mountIdAt!;
      native.mountIdAt = (p) => {
        if (p === merged) throw Object.assign(new Error('ENOTCONN: statx'), { code: 'ENOTCONN' });
        return statx(p);
      };
      const table = () => `101 1 0:9 / ${merged} rw - fuse.eci-rootfs /run/eci/containers/c/rootfs rw\n`;
      expect(unmountRootfs(native, made, table)).toEqual([]);
      expect(top.get(merged)).toEqual([]);
      expect(top.get('/run/eci/containers/c/rootfs')).toEqual([]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('falls back to mountinfo where the kernel cannot tell (null)', async () => {
    const { native } = fakeNative({ statx: false });
    let reads = 0;
    const table = () => { reads++; return reads > 1 ? '100 1 0:5 / /run/eci/containers/c/rootfs rw - tmpfs t rw\n' : ''; };
    const made = await mountRootfs(native, { kind: 'bind', source: '/img' }, '/run/eci/containers/c/rootfs', range, range, table);
    expect(made).toEqual([{ path: '/run/eci/containers/c/rootfs', id: 100 }]);
    expect(reads).toBe(2);
  });

  it('unmounts off the event loop (unmountAsync) newest first, one at a time, and reports a stuck mount', async () => {
    const { native, top } = fakeNative({ statx: true });
    const made = await mountRootfs(native, { kind: 'bind', source: '/img' }, '/run/eci/containers/c/rootfs', range, range, noTable);
    const binds = mountBinds(native, [{ index: 0, source: '/v', target: '/run/eci/containers/c/binds/0', dev: 1n, ino: 2n, rdonly: false, nosuid: true, nodev: true }], range, range, noTable);
    const order: string[] = [];
    let inFlight = 0;
    native.unmount = () => { throw new Error('the synchronous unmount was used'); };
    native.unmountAsync = async (t) => {
      order.push(t);
      expect(++inFlight).toBe(1);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      if (t.endsWith('/rootfs')) throw Object.assign(new Error('EBUSY: umount2'), { code: 'EBUSY' });
      top.get(t)?.pop();
    };
    expect(await unmountRootfsAsync(native, [...made, ...binds], noTable)).toEqual(made);
    expect(order).toEqual(['/run/eci/containers/c/binds/0', '/run/eci/containers/c/rootfs']);
    expect(top.get('/run/eci/containers/c/binds/0')).toEqual([]);
    expect(top.get('/run/eci/containers/c/rootfs')).toEqual([100]);
  });

  it('unmounts in one job (unmountTopAsync) newest first, by mount id, and reports a failed one', async () => {
    const { native, top } = fakeNative({ statx: true });
    const made = await mountRootfs(native, { kind: 'bind', source: '/img' }, '/run/eci/containers/c/rootfs', range, range, noTable);
    const binds = mountBinds(native, [0, 1].map((i) => ({ index: i, source: `/v${i}`, target: `/run/eci/containers/c/binds/${i}`, dev: 1n, ino: 2n, rdonly: false, nosuid: true, nodev: true })), range, range, noTable);
    top.get('/run/eci/containers/c/binds/0')!.push(999); // stacked since: not ours
    const jobs: string[][] = [];
    native.unmount = () => { throw new Error('the synchronous unmount was used'); };
    native.unmountAsync = async () => { throw new Error('one hop per mount was used'); };
    // The same rule as the addon: only a mount still on top at its path, in the order given.
    native.unmountTopAsync = async (ms) => {
      jobs.push(ms.map((m) => m.path));
      return ms.map((m) => {
        if (top.get(m.path)?.at(-1) !== m.id) return { outcome: 'absent' as const };
        if (m.path.endsWith('/binds/1')) return { outcome: 'failed' as const };
        top.get(m.path)!.pop();
        return { outcome: 'unmounted' as const };
      });
    };
    expect(await unmountRootfsAsync(native, [...made, ...binds], noTable)).toEqual([binds[1]]);
    expect(jobs).toEqual([['/run/eci/containers/c/binds/1', '/run/eci/containers/c/binds/0', '/run/eci/containers/c/rootfs']]);
    expect(top.get('/run/eci/containers/c/rootfs')).toEqual([]);
    expect(top.get('/run/eci/containers/c/binds/0')).toEqual([101, 999]);
  });

  it('leaves what the one job could not decide (no STATX_MNT_ID) to the mount table, one by one', async () => {
    const { native, top } = fakeNative({ statx: true });
    const made = await mountRootfs(native, { kind: 'bind', source: '/img' }, '/run/eci/containers/c/rootfs', range, range, noTable);
    const binds = mountBinds(native, [{ index: 0, source: '/v', target: '/run/eci/containers/c/binds/0', dev: 1n, ino: 2n, rdonly: false, nosuid: true, nodev: true }], range, range, noTable);
    const hops: string[] = [];
    native.unmountTopAsync = async (ms) => ms.map((m, i) => {
      if (i > 0) return { outcome: 'undecided' as const };
      top.get(m.path)!.pop();
      return { outcome: 'unmounted' as const };
    });
    native.mountIdAt = () => null;
    native.unmountAsync = async (t) => { hops.push(t); top.get(t)?.pop(); };
    const table = () => '100 1 0:5 / /run/eci/containers/c/rootfs rw - tmpfs t rw\n';
    expect(await unmountRootfsAsync(native, [...made, ...binds], table)).toEqual([]);
    expect(hops).toEqual(['/run/eci/containers/c/rootfs']);
    expect(top.get('/run/eci/containers/c/binds/0')).toEqual([]);
    expect(top.get('/run/eci/containers/c/rootfs')).toEqual([]);
  });
});
