// Mock of mounts.ts and container.ts. Every call is recorded in `nativeMock.calls`; mounts live in
// `nativeMock.mounts` (target -> stack); `nativeMock.failNext(fn, code)` makes the next call(s) of fn
// fail with that code.
import { NativeError, errnoOf, usageError } from '../errors.ts';
import type { HostViewOptions, IdmapBind, IdRange, OverlayOptions, RootfsBindOptions, RootfsOverlayOptions, UnmountOptions, UnmountTopResult } from '../mounts.ts';
import { requireAbsolute, takeFailure, type MockFailure } from './common.ts';

export type NativeFn = 'mountRootfsOverlay' | 'mountRootfsBind' | 'mountHostView' | 'unmount' | 'isMountpoint' | 'bindMount' | 'idmapBinds' | 'mountOverlay';

export type NativeCall =
  | { fn: 'mountRootfsOverlay'; args: [RootfsOverlayOptions] }
  | { fn: 'mountRootfsBind'; args: [RootfsBindOptions] }
  | { fn: 'mountHostView'; args: [HostViewOptions] }
  | { fn: 'unmount'; args: [string, UnmountOptions | undefined] }
  | { fn: 'isMountpoint'; args: [string] }
  | { fn: 'bindMount'; args: [string, string] }
  | { fn: 'idmapBinds'; args: [IdmapBind[], IdRange, IdRange] }
  | { fn: 'mountOverlay'; args: [OverlayOptions] };

export type MockMount =
  | { kind: 'overlay'; options: RootfsOverlayOptions }
  | { kind: 'bind'; options: RootfsBindOptions }
  | { kind: 'host-view'; options: HostViewOptions }
  | { kind: 'plain-overlay'; options: OverlayOptions };

const failures = new Map<NativeFn | '*', MockFailure[]>();

export const nativeMock = {
  calls: [] as NativeCall[],
  /** Mounted targets; a later mount on the same target stacks on top, as in the kernel. */
  mounts: new Map<string, MockMount[]>(),

  /** The next call(s) of fn ('*': of any function) throw/reject with NativeError `code`. */
  failNext(fn: NativeFn | '*', code: string, o: Omit<MockFailure, 'code'> = {}): void {
    const list = failures.get(fn) ?? [];
    list.push({ code, ...o });
    failures.set(fn, list);
  },

  callsOf<F extends NativeFn>(fn: F): Extract<NativeCall, { fn: F }>[] {
    return nativeMock.calls.filter((c): c is Extract<NativeCall, { fn: F }> => c.fn === fn);
  },

  reset(): void {
    nativeMock.calls.length = 0;
    nativeMock.mounts.clear();
    failures.clear();
  },
};

function injected(fn: NativeFn, syscall: string): NativeError | undefined {
  for (const key of [fn, '*'] as const) {
    const f = takeFailure(failures.get(key), fn, syscall);
    if (f) return f;
  }
  return undefined;
}

function requireBelow(what: string, base: string, p: string): void {
  requireAbsolute(what, p);
  const prefix = base.endsWith('/') ? base : `${base}/`;
  if (!p.startsWith(prefix) || p.length === prefix.length) throw usageError(`${what} ${p} is not under base ${base}`);
}

function push(target: string, m: MockMount): void {
  const stack = nativeMock.mounts.get(target) ?? [];
  stack.push(m);
  nativeMock.mounts.set(target, stack);
}

export async function mountRootfsOverlay(o: RootfsOverlayOptions): Promise<void> {
  nativeMock.calls.push({ fn: 'mountRootfsOverlay', args: [o] });
  const failure = injected('mountRootfsOverlay', 'fsconfig');
  if (failure) throw failure;
  requireAbsolute('base', o.base);
  requireAbsolute('target', o.target);
  if (o.lower.length === 0) throw usageError('an overlay needs at least one lower layer');
  for (const l of o.lower) requireBelow('lower', o.base, l);
  requireBelow('upper', o.base, o.upper);
  requireBelow('work', o.base, o.work);
  push(o.target, { kind: 'overlay', options: o });
}

export async function mountRootfsBind(o: RootfsBindOptions): Promise<void> {
  nativeMock.calls.push({ fn: 'mountRootfsBind', args: [o] });
  const failure = injected('mountRootfsBind', 'open_tree');
  if (failure) throw failure;
  requireAbsolute('source', o.source);
  requireAbsolute('target', o.target);
  push(o.target, { kind: 'bind', options: o });
}

export async function mountHostView(o: HostViewOptions): Promise<void> {
  nativeMock.calls.push({ fn: 'mountHostView', args: [o] });
  const failure = injected('mountHostView', 'mount');
  if (failure) throw failure;
  requireAbsolute('source', o.source);
  requireAbsolute('target', o.target);
  push(o.target, { kind: 'host-view', options: o });
}

/** As unmount (recorded as an 'unmount' call), settled a tick later like the thread-pool one. */
export async function unmountAsync(target: string, o?: UnmountOptions): Promise<void> {
  await Promise.resolve();
  unmount(target, o);
}

/** The mock keeps no mount ids: every mount is 'undecided', so callers read mountinfo and unmount one by one. */
export async function unmountTopAsync(mounts: readonly { path: string; id: number }[], _o?: UnmountOptions): Promise<UnmountTopResult[]> {
  await Promise.resolve();
  return mounts.map(() => ({ outcome: 'undecided' }));
}

export function unmount(target: string, o?: UnmountOptions): void {
  nativeMock.calls.push({ fn: 'unmount', args: [target, o] });
  const failure = injected('unmount', 'umount2');
  if (failure) throw failure;
  const stack = nativeMock.mounts.get(target);
  if (!stack?.length) {
    throw new NativeError({
      code: 'EINVAL',
      errno: errnoOf('EINVAL'),
      syscall: 'umount2',
      message: `EINVAL: Invalid argument, umount2 '${target}'`,
      path: target,
    });
  }
  stack.pop();
  if (stack.length === 0) nativeMock.mounts.delete(target);
}

/** No fds to mark in the mock (the real one sets FD_CLOEXEC from fd 3 up). */

export function isMountpoint(path: string): boolean {
  nativeMock.calls.push({ fn: 'isMountpoint', args: [path] });
  const failure = injected('isMountpoint', 'statx');
  if (failure) throw failure;
  return (nativeMock.mounts.get(path)?.length ?? 0) > 0;
}

/** The mock keeps no mount ids: callers read the real mountinfo, as on a kernel without STATX_MNT_ID. */
export function mountInfoAt(_path: string): null {
  return null;
}

export function mountIdAt(_path: string): null {
  return null;
}

export function bindMount(source: string, target: string): void {
  nativeMock.calls.push({ fn: 'bindMount', args: [source, target] });
  const failure = injected('bindMount', 'open_tree');
  if (failure) throw failure;
  requireAbsolute('source', source);
  requireAbsolute('target', target);
  const top = nativeMock.mounts.get(source)?.at(-1);
  push(target, top ?? { kind: 'bind', options: { source, target, uid: { hostID: 0, size: 0 }, gid: { hostID: 0, size: 0 } } });
}

export function idmapBinds(binds: IdmapBind[], uid: IdRange, gid: IdRange): void {
  nativeMock.calls.push({ fn: 'idmapBinds', args: [binds, uid, gid] });
  const failure = injected('idmapBinds', 'open_tree');
  if (failure) throw failure;
  for (const b of binds) {
    requireAbsolute('source', b.source);
    requireAbsolute('target', b.target);
    push(b.target, { kind: 'bind', options: { source: b.source, target: b.target, uid, gid } });
  }
}

export async function idmapBindsAsync(binds: IdmapBind[], uid: IdRange, gid: IdRange): Promise<void> {
  await Promise.resolve();
  idmapBinds(binds, uid, gid);
}

export function mountOverlay(o: OverlayOptions): void {
  nativeMock.calls.push({ fn: 'mountOverlay', args: [o] });
  const failure = injected('mountOverlay', 'mount');
  if (failure) throw failure;
  if (o.lower.length === 0) throw usageError('an overlay needs at least one lower layer');
  const bad = [...o.lower, o.upper, o.work].find((p) => !p.startsWith('/') || /[,:]/.test(p));
  if (bad !== undefined) throw usageError(`overlay layer ${bad} must be an absolute path without ',' or ':'`);
  requireAbsolute('target', o.target);
  push(o.target, { kind: 'plain-overlay', options: o });
}

// ---------- container.ts: the same argument checks as the real calls; nothing is mounted or changed ----------

export async function bindInto(pid: number, source: string, target: string): Promise<void> {
  requireAbsolute('source', source);
  requireAbsolute('target', target);
  void pid;
}

/** bindIntoMany: the same argument checks as the real one; nothing is mounted. */
export async function bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void> {
  if (pairs.length > 64) throw usageError('bindIntoMany: at most 64 files per run');
  for (const p of pairs) await bindInto(pid, p.source, p.target);
}

/** setDomainname: checks the name as the real one does; nothing is changed. */
export async function setDomainname(pid: number, name: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0 || Buffer.byteLength(name) > 64 || name.includes('\0'))
    throw usageError('setDomainname: bad pid or name');
}
