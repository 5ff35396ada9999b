import { beforeEach, describe, expect, it } from 'vitest';
import * as real from '../../native/index.ts';
import * as mock from '../../native/mock.ts';

const R = { hostID: 100000, size: 65536 };
const overlay = {
  base: '/b', lower: ['/b/l/A', '/b/l/B'], upper: '/b/c/diff', work: '/b/c/work', target: '/t', uid: R, gid: R,
};

describe('native mock', () => {
  beforeEach(() => mock.nativeMock.reset());

  it('exports every function and class of the real module', () => {
    for (const [k, v] of Object.entries(real)) expect(typeof (mock as Record<string, unknown>)[k], k).toBe(typeof v);
    expect(mock.NativeError).toBe(real.NativeError);
  });

  it('records mounts and unmounts, stacking as the kernel does', async () => {
    await mock.mountRootfsOverlay(overlay);
    await mock.mountRootfsBind({ source: '/src', target: '/t', uid: R, gid: R });
    expect(mock.isMountpoint('/t')).toBe(true);
    mock.unmount('/t', { detach: true });
    expect(mock.nativeMock.mounts.get('/t')?.map((m) => m.kind)).toEqual(['overlay']);
    mock.unmount('/t');
    expect(mock.isMountpoint('/t')).toBe(false);
    expect(() => mock.unmount('/t')).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'umount2' }));
    expect(mock.nativeMock.callsOf('unmount').map((c) => c.args[0])).toEqual(['/t', '/t', '/t']);
  });

  it('fails on request with the given code, then recovers', async () => {
    mock.nativeMock.failNext('mountRootfsBind', 'ENOENT');
    await expect(mock.mountRootfsBind({ source: '/s', target: '/t', uid: R, gid: R })).rejects.toMatchObject({
      code: 'ENOENT', errno: 2, syscall: 'open_tree',
    });
    await mock.mountRootfsBind({ source: '/s', target: '/t', uid: R, gid: R });
    mock.nativeMock.failNext('*', 'EBUSY', { times: 2 });
    expect(() => mock.unmount('/t')).toThrow(mock.NativeError);
    expect(() => mock.isMountpoint('/t')).toThrow(expect.objectContaining({ code: 'EBUSY', errno: 16 }));
    expect(mock.isMountpoint('/t')).toBe(true);
  });

  it('refuses layers outside base like the helper does', async () => {
    await expect(mock.mountRootfsOverlay({ ...overlay, lower: ['/elsewhere'] })).rejects.toMatchObject({ code: 'EUSAGE' });
    expect(mock.isMountpoint('/t')).toBe(false);
  });
});
