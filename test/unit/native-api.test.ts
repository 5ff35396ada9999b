// The mock and the real native module are held to one interface, NativeApi, at compile time
// (tsconfig.test.json type-checks this file): the @ts-expect-error lines fail `npm run typecheck` the day
// an incomplete or mistyped stand-in is accepted as a NativeApi.
import { beforeEach, describe, expect, it } from 'vitest';
import type { NativeApi } from '../../native/api.ts';
import * as real from '../../native/index.ts';
import * as mock from '../../native/mock.ts';

// The modules' named exports (what callers import, and what vi.mock swaps) are NativeApis too.
const realModule: NativeApi = real;
const mockModule: NativeApi = mock;

const { fdHolderPath: _left, ...withoutOne } = mock.nativeApi;
// @ts-expect-error a stand-in that lacks a call (fdHolderPath) is not a NativeApi
const incomplete: NativeApi = withoutOne;

// @ts-expect-error a stand-in whose isMountpoint answers a Promise is not a NativeApi
const mistyped: NativeApi = { ...mock.nativeApi, isMountpoint: async (path: string) => path === '/' };

describe('NativeApi', () => {
  it('each call is a named export and a member of nativeApi, alike in the real module and the mock', () => {
    const realApi = real.nativeApi as unknown as Record<string, unknown>;
    const mockApi = mock.nativeApi as unknown as Record<string, unknown>;
    const calls = Object.entries(real).filter(([k, v]) => typeof v === 'function' && k in realApi).map(([k]) => k);
    expect(calls).toContain('mountOverlay');
    expect(calls).toContain('launchFdHolder');
    for (const k of calls) {
      expect(realApi[k], k).toBe((real as Record<string, unknown>)[k]);
      expect(mockApi[k], k).toBe((mock as Record<string, unknown>)[k]);
    }
    void [incomplete, mistyped, realModule, mockModule];
  });
});

describe('calls new to native/', () => {
  beforeEach(() => mock.nativeMock.reset());

  it('mountOverlay refuses what overlay would misread before reaching C; the mock stacks it like a mount', () => {
    const o = { lower: ['/img/rootfs'], upper: '/l/upper', work: '/l/work', target: '/b/rootfs' };
    for (const bad of [{ ...o, lower: [] }, { ...o, lower: ['/a,b'] }, { ...o, upper: 'rel/upper' }, { ...o, work: '/w:x' }, { ...o, target: 'rootfs' }]) {
      expect(() => real.mountOverlay(bad), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'EUSAGE', errno: 22 }));
      expect(() => mock.mountOverlay(bad), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'EUSAGE' }));
    }
    mock.mountOverlay(o);
    expect(mock.isMountpoint('/b/rootfs')).toBe(true);
    expect(mock.nativeMock.mounts.get('/b/rootfs')?.map((m) => m.kind)).toEqual(['plain-overlay']);
    mock.unmount('/b/rootfs');
    expect(mock.isMountpoint('/b/rootfs')).toBe(false);
    mock.nativeMock.failNext('mountOverlay', 'EBUSY');
    expect(() => mock.mountOverlay(o)).toThrow(expect.objectContaining({ code: 'EBUSY', syscall: 'mount' }));
  });

  it('runLauncher: a launcher that cannot run is ENOENT (spawn), one that fails is ECHILD, as rejections', async () => {
    await expect(real.runLauncher(['state', 'x'], { socket: '/s', launcher: '/nonexistent/eci-runc' }))
      .rejects.toMatchObject({ code: 'ENOENT', syscall: 'spawn' });
    await expect(real.runLauncher(['state', 'x'], { socket: '/s', launcher: '/bin/false' }))
      .rejects.toMatchObject({ code: 'ECHILD', syscall: 'eci-runc', message: expect.stringContaining('exit 1') });
    await expect(real.runLauncher([], { socket: '/s', launcher: '/bin/true' })).resolves.toBeUndefined();
    await expect(mock.runLauncher([], { socket: '/s' })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
