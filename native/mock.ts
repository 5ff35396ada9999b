// In-memory stand-in for native/index.ts, for unit and model tests: same exports, no root, no kernel.
// Swap it in with vi.mock('<path>/native/index.ts', () => import('<path>/native/mock.ts')).
// Every call is recorded in `nativeMock.calls`; mounts live in `nativeMock.mounts` (target -> stack);
// `nativeMock.failNext(fn, code)` makes the next call(s) of fn fail with that code.
import { NativeError, errnoOf } from './errors.ts';
import type { IdmapBind, IdRange, RootfsBindOptions, RootfsOverlayOptions, UnmountOptions } from './index.ts';

export { NativeError, parseHelperOutput } from './errors.ts';
export type { HelperExit, NativeErrorInit } from './errors.ts';
export type { IdmapBind, IdRange, RootfsBindOptions, RootfsOverlayOptions, UnmountOptions } from './index.ts';

export type NativeFn = 'mountRootfsOverlay' | 'mountRootfsBind' | 'unmount' | 'isMountpoint' | 'bindMount' | 'idmapBinds';

export type NativeCall =
  | { fn: 'mountRootfsOverlay'; args: [RootfsOverlayOptions] }
  | { fn: 'mountRootfsBind'; args: [RootfsBindOptions] }
  | { fn: 'unmount'; args: [string, UnmountOptions | undefined] }
  | { fn: 'isMountpoint'; args: [string] }
  | { fn: 'bindMount'; args: [string, string] }
  | { fn: 'idmapBinds'; args: [IdmapBind[], IdRange, IdRange] };

export type MockMount =
  | { kind: 'overlay'; options: RootfsOverlayOptions }
  | { kind: 'bind'; options: RootfsBindOptions };

export interface MockFailure {
  code: string;
  errno?: number;
  syscall?: string;
  message?: string;
  /** How many calls fail (default 1). */
  times?: number;
}

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
    const f = failures.get(key)?.[0];
    if (!f) continue;
    f.times = (f.times ?? 1) - 1;
    if (f.times <= 0) failures.get(key)!.shift();
    return new NativeError({
      code: f.code,
      errno: f.errno ?? errnoOf(f.code),
      syscall: f.syscall ?? syscall,
      message: f.message ?? `${f.code}: injected failure of ${fn}`,
    });
  }
  return undefined;
}

function usage(message: string): NativeError {
  return new NativeError({ code: 'EUSAGE', errno: errnoOf('EUSAGE'), syscall: '', message });
}

function requireAbsolute(what: string, p: string): void {
  if (!p.startsWith('/')) throw usage(`--${what} must be an absolute path, got ${p}`);
}

function requireBelow(what: string, base: string, p: string): void {
  requireAbsolute(what, p);
  const prefix = base.endsWith('/') ? base : `${base}/`;
  if (!p.startsWith(prefix) || p.length === prefix.length) throw usage(`${what} ${p} is not under base ${base}`);
}

function push(target: string, m: MockMount): void {
  const stack = nativeMock.mounts.get(target) ?? [];
  stack.push(m);
  nativeMock.mounts.set(target, stack);
}

export function helperPath(): string {
  return '/mock/native/bin/eci-helper';
}

export async function mountRootfsOverlay(o: RootfsOverlayOptions): Promise<void> {
  nativeMock.calls.push({ fn: 'mountRootfsOverlay', args: [o] });
  const failure = injected('mountRootfsOverlay', 'fsconfig');
  if (failure) throw failure;
  requireAbsolute('base', o.base);
  requireAbsolute('target', o.target);
  if (o.lower.length === 0) throw usage('an overlay needs at least one lower layer');
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

export function isMountpoint(path: string): boolean {
  nativeMock.calls.push({ fn: 'isMountpoint', args: [path] });
  const failure = injected('isMountpoint', 'statx');
  if (failure) throw failure;
  return (nativeMock.mounts.get(path)?.length ?? 0) > 0;
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
