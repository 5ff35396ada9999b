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

/** No fds to mark in the mock (the real one sets FD_CLOEXEC from fd 3 up). */
export function cloexecInherited(): void {}

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

// ---------- seccomp agent (appended): same shapes as native/index.ts, driven by `seccompMock` ----------
// seccompMock.connect(path, delivery) plays a runtime connecting to a served agent socket (the payload
// is judged by the same parser as the real one); seccompMock.notify(fd, n) / hangup(fd) drive a
// listenSeccomp(fd) listener; respond() calls land in seccompMock.responses; mountAs/umountAs calls in
// seccompMock.asCalls. failNext('respond' | 'mountAs' | 'umountAs', code) injects failures.
import {
  asHelperArgs,
  createSeccompListener,
  parseAgentDelivery,
  type MountAsOptions,
  type RawAgentDelivery,
  type RawWatchEvent,
  type SeccompAgentConnection,
  type SeccompListener,
  type SeccompNotif,
  type SeccompResponse,
  type UmountAsOptions,
  type AsOutcome,
} from './seccomp-agent.ts';

export type {
  AsNotify,
  AsOutcome,
  MountAsOptions,
  SeccompAgentConnection,
  SeccompListener,
  SeccompNotif,
  SeccompResponse,
  SeccompStringIssue,
  UmountAsOptions,
} from './seccomp-agent.ts';
export { answeredOf, parseAgentDelivery } from './seccomp-agent.ts';

type SeccompMockFn = 'respond' | 'mountAs' | 'umountAs';

interface MockWatch {
  cb: (e: RawWatchEvent) => void;
  /** ids notified and not yet answered */
  pending: Set<bigint>;
}

const seccompFailures = new Map<SeccompMockFn, MockFailure[]>();
const seccompAgents = new Map<string, (c: SeccompAgentConnection) => void>();
const seccompWatches = new Map<number, MockWatch>();
let seccompNextId = 1n;

function seccompInjected(fn: SeccompMockFn, syscall: string): NativeError | undefined {
  const f = seccompFailures.get(fn)?.[0];
  if (!f) return undefined;
  f.times = (f.times ?? 1) - 1;
  if (f.times <= 0) seccompFailures.get(fn)!.shift();
  return new NativeError({
    code: f.code,
    errno: f.errno ?? errnoOf(f.code),
    syscall: f.syscall ?? syscall,
    message: f.message ?? `${f.code}: injected failure of ${fn}`,
  });
}

export const seccompMock = {
  /** fds closed by the agent parser or by listener close()/hangup. */
  closedFds: [] as number[],
  responses: [] as { fd: number; id: bigint; response: SeccompResponse }[],
  asCalls: [] as { kind: 'mount-as' | 'umount-as'; args: string[]; options: MountAsOptions | UmountAsOptions }[],

  /** Paths with a serving agent. */
  get agents(): string[] {
    return [...seccompAgents.keys()];
  },
  /** fds with an open listener. */
  get listening(): number[] {
    return [...seccompWatches.keys()];
  },

  /** A runtime connects to the agent at path and sends delivery; returns what onConnection got. */
  connect(path: string, d: RawAgentDelivery): SeccompAgentConnection {
    const on = seccompAgents.get(path);
    if (!on) throw new NativeError({ code: 'ECONNREFUSED', errno: errnoOf('ECONNREFUSED'), syscall: 'connect', message: `ECONNREFUSED: no agent at ${path}`, path });
    const { conn, close } = parseAgentDelivery(d);
    seccompMock.closedFds.push(...close);
    on(conn);
    return conn;
  },

  /** A runc-like delivery: compact JSON with one fd. */
  runcDelivery(o: { id: string; pid: number; fd: number; bundle?: string; status?: string }): RawAgentDelivery {
    const state = { ociVersion: '1.0.2-dev', id: o.id, status: o.status ?? 'creating', pid: o.pid, bundle: o.bundle ?? '/bundle' };
    return { payload: JSON.stringify({ ociVersion: '1.0.2-dev', fds: ['seccompFd'], pid: o.pid, state }), fds: [o.fd] };
  },

  /** Delivers a notification on fd's listener; returns its id. `valid: false` plays a target that left. */
  notify(fd: number, n: Partial<SeccompNotif> & { syscall: string; valid?: boolean }): bigint {
    const w = seccompWatches.get(fd);
    if (!w) throw new Error(`seccompMock.notify: nobody listens on fd ${fd}`);
    const id = n.id ?? seccompNextId++;
    const full = { pid: 1, nr: 0, arch: 0xc000003e, args: [0n, 0n, 0n, 0n, 0n, 0n], strings: {}, ...n, id, valid: n.valid ?? true };
    if (full.valid) w.pending.add(id);
    w.cb(full as RawWatchEvent);
    return id;
  },

  /** Every user of the filter is gone: the listener ends and its fd is closed. */
  hangup(fd: number): void {
    const w = seccompWatches.get(fd);
    if (!w) return;
    seccompWatches.delete(fd);
    seccompMock.closedFds.push(fd);
    w.cb({ closed: true });
  },

  failNext(fn: SeccompMockFn, code: string, o: Omit<MockFailure, 'code'> = {}): void {
    const list = seccompFailures.get(fn) ?? [];
    list.push({ code, ...o });
    seccompFailures.set(fn, list);
  },

  reset(): void {
    seccompMock.closedFds.length = 0;
    seccompMock.responses.length = 0;
    seccompMock.asCalls.length = 0;
    seccompFailures.clear();
    seccompAgents.clear();
    seccompWatches.clear();
  },
};

export function serveSeccompAgent(path: string, onConnection: (c: SeccompAgentConnection) => void): { close(): Promise<void> } {
  requireAbsolute('path', path);
  seccompAgents.set(path, onConnection);
  return {
    close() {
      if (seccompAgents.get(path) === onConnection) seccompAgents.delete(path);
      return Promise.resolve();
    },
  };
}

export function listenSeccomp(fd: number): SeccompListener {
  if (!Number.isInteger(fd) || fd < 0) throw usage(`listenSeccomp needs an fd, got ${fd}`);
  return createSeccompListener({
    fd,
    watch(cb) {
      seccompWatches.set(fd, { cb, pending: new Set() });
      return {
        close() {
          if (seccompWatches.delete(fd)) seccompMock.closedFds.push(fd);
        },
      };
    },
    respond(id, response) {
      const failure = seccompInjected('respond', 'ioctl');
      if (failure) throw failure;
      const w = seccompWatches.get(fd);
      if (!w?.pending.delete(id))
        throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'ioctl', message: `ENOENT: no pending notification ${id}` });
      seccompMock.responses.push({ fd, id, response });
    },
    idValid: (id) => seccompWatches.get(fd)?.pending.has(id) ?? false,
  });
}

// The mock has no performer: like the fallback paths it never answers a notification itself (AsOutcome {}).
export async function mountAs(o: MountAsOptions): Promise<AsOutcome> {
  const args = asHelperArgs('mount-as', o, o.notify ? 3 : undefined);
  seccompMock.asCalls.push({ kind: 'mount-as', args, options: o });
  const failure = seccompInjected('mountAs', 'mount');
  if (failure) throw failure;
  return {};
}

export async function umountAs(o: UmountAsOptions): Promise<AsOutcome> {
  const args = asHelperArgs('umount-as', o, o.notify ? 3 : undefined);
  seccompMock.asCalls.push({ kind: 'umount-as', args, options: o });
  const failure = seccompInjected('umountAs', 'umount2');
  if (failure) throw failure;
  return {};
}

// ---------- procfs (appended): mounts are kept in procFsMock.mounts; read() plays a caller ----------
import type { ProcFsMount, ProcFsMountOptions, ProcFsReader } from './index.ts';
export type { ProcFsMount, ProcFsMountOptions, ProcFsReader } from './index.ts';

export const procFsMock = {
  /** Live mounts by mountpoint. */
  mounts: new Map<string, { files: string[]; onRead: ProcFsReader; views: Set<string> }>(),
  /** When set, the next mountProcFs throws a NativeError with this code (then it is cleared). */
  failNextMount: undefined as string | undefined,
  /**
   * What a process with host pid `pid` would read from dir/file, dir being a mountpoint or a view's
   * directory in one (ENOENT when absent).
   */
  async read(dir: string, file: string, pid: number): Promise<string> {
    const slash = dir.lastIndexOf('/');
    const view = procFsMock.mounts.has(dir) ? '' : dir.slice(slash + 1);
    const m = procFsMock.mounts.get(view ? dir.slice(0, slash) : dir);
    if (!m || !m.files.includes(file) || (view && !m.views.has(view)))
      throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${dir}/${file}` });
    try {
      return await m.onRead(file, pid, view);
    } catch (cause) {
      throw new NativeError({ code: 'EIO', errno: errnoOf('EIO'), syscall: 'read', message: `EIO: ${dir}/${file}`, cause });
    }
  },
  reset(): void {
    procFsMock.mounts.clear();
    procFsMock.failNextMount = undefined;
  },
};

export function mountProcFs(o: ProcFsMountOptions, onRead: ProcFsReader): ProcFsMount {
  if (!o.mountpoint.startsWith('/')) throw usage(`procfs mountpoint must be an absolute path, got ${o.mountpoint}`);
  if (procFsMock.failNextMount) {
    const code = procFsMock.failNextMount;
    procFsMock.failNextMount = undefined;
    throw new NativeError({ code, errno: errnoOf(code), syscall: 'mount', message: `${code}: injected failure of mountProcFs`, path: o.mountpoint });
  }
  if (procFsMock.mounts.has(o.mountpoint))
    throw new NativeError({ code: 'EBUSY', errno: errnoOf('EBUSY'), syscall: 'mount', message: `EBUSY: ${o.mountpoint}`, path: o.mountpoint });
  const views = new Set<string>();
  procFsMock.mounts.set(o.mountpoint, { files: [...o.files], onRead, views });
  return {
    close() {
      procFsMock.mounts.delete(o.mountpoint);
      return Promise.resolve();
    },
    addView(name) {
      if (!name || name === '.' || name === '..' || name.includes('/') || o.files.includes(name)) throw usage(`view name '${name}' is not a plain name apart from the files`);
      views.add(name);
    },
    removeView(name) {
      views.delete(name);
    },
  };
}

// ---------- chmodAs (appended): calls land in chmodAsMock.calls; failNext(code) injects a failure ----------
import { chmodAsHelperArgs, type ChmodAsOptions } from './seccomp-agent.ts';
export type { ChmodAsOptions } from './seccomp-agent.ts';

export const chmodAsMock = {
  calls: [] as { args: string[]; options: ChmodAsOptions }[],
  failures: [] as (Omit<MockFailure, 'code'> & { code: string })[],
  /** The next chmodAs rejects with code (syscall 'chmod' unless o.syscall says otherwise). */
  failNext(code: string, o: Omit<MockFailure, 'code'> = {}): void {
    chmodAsMock.failures.push({ code, ...o });
  },
  reset(): void {
    chmodAsMock.calls.length = 0;
    chmodAsMock.failures.length = 0;
  },
};

export async function chmodAs(o: ChmodAsOptions): Promise<void> {
  const args = chmodAsHelperArgs(o, o.notify ? 3 : undefined);
  chmodAsMock.calls.push({ args, options: o });
  const f = chmodAsMock.failures.shift();
  if (f) {
    throw new NativeError({
      code: f.code, errno: f.errno ?? errnoOf(f.code), syscall: f.syscall ?? 'chmod',
      message: f.message ?? `${f.code}: injected failure of chmodAs`,
    });
  }
}

// ---------- sysctl views (appended): mountRwFs mounts live in rwFsMock.mounts; read()/write() play a caller ----------
import type { RwFsMountOptions, RwFsWriter } from './index.ts';
export type { RwFsMountOptions, RwFsWriter } from './index.ts';

export const rwFsMock = {
  mounts: new Map<string, { files: string[]; writable: string[]; onRead: ProcFsReader; onWrite: RwFsWriter }>(),
  async read(mountpoint: string, file: string, pid: number): Promise<string> {
    const m = rwFsMock.mounts.get(mountpoint);
    if (!m || !m.files.includes(file))
      throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${mountpoint}/${file}` });
    return m.onRead(file, pid, '');
  },
  /** Rejects with a NativeError (syscall 'write') carrying the errno the kernel would return. */
  async write(mountpoint: string, file: string, pid: number, uid: number, data: string): Promise<void> {
    const m = rwFsMock.mounts.get(mountpoint);
    if (!m || !m.files.includes(file))
      throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${mountpoint}/${file}` });
    if (!m.writable.includes(file))
      throw new NativeError({ code: 'EACCES', errno: errnoOf('EACCES'), syscall: 'open', message: `EACCES: ${mountpoint}/${file}` });
    try {
      await m.onWrite(file, pid, uid, data);
    } catch (e) {
      const c = (e as { code?: string }).code;
      const code = c && errnoOf(c) > 0 ? c : 'EIO';
      throw new NativeError({ code, errno: errnoOf(code), syscall: 'write', message: `${code}: ${mountpoint}/${file}`, cause: e });
    }
  },
  reset(): void {
    rwFsMock.mounts.clear();
  },
};

export function mountRwFs(o: RwFsMountOptions, onRead: ProcFsReader, onWrite: RwFsWriter): ProcFsMount {
  if (!o.mountpoint.startsWith('/')) throw usage(`procfs mountpoint must be an absolute path, got ${o.mountpoint}`);
  if (rwFsMock.mounts.has(o.mountpoint))
    throw new NativeError({ code: 'EBUSY', errno: errnoOf('EBUSY'), syscall: 'mount', message: `EBUSY: ${o.mountpoint}`, path: o.mountpoint });
  rwFsMock.mounts.set(o.mountpoint, { files: [...o.files], writable: [...o.writable], onRead, onWrite });
  return { close() { rwFsMock.mounts.delete(o.mountpoint); return Promise.resolve(); } };
}

export async function bindInto(pid: number, source: string, target: string): Promise<void> {
  requireAbsolute('source', source);
  requireAbsolute('target', target);
  void pid;
}

/** bindIntoMany: the same argument checks as the real one; nothing is mounted. */
export async function bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void> {
  if (pairs.length > 64) throw usage('bindIntoMany: at most 64 files per run');
  for (const p of pairs) await bindInto(pid, p.source, p.target);
}

/** setDomainname: checks the name as the real one does; nothing is changed. */
export async function setDomainname(pid: number, name: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0 || Buffer.byteLength(name) > 64 || name.includes('\0'))
    throw usage('setDomainname: bad pid or name');
}

// ---------- fd-holder (appended): no holder process in unit tests ----------
export type { FdHolderConnection } from './index.ts';

export function fdHolderPath(): string {
  return '/nonexistent/eci-fdholder';
}

/** There is never a holder to connect to here: the manager then runs without one (fail closed). */
export function connectFdHolder(path: string): import('./index.ts').FdHolderConnection {
  requireAbsolute('fd-holder socket', path);
  throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'connect', message: `ENOENT: connect ${path}` });
}

export function closeFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw usage(`closeFd needs an fd, got ${fd}`);
}

export function setFdHolderNotes(conn: import('./index.ts').FdHolderConnection | undefined): void {
  void conn;
}
