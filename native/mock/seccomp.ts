// Mock of seccomp.ts, driven by `seccompMock`: seccompMock.connect(path, delivery) plays a runtime
// connecting to a served agent socket (the payload is judged by the same parser as the real one);
// seccompMock.notify(fd, n) / hangup(fd) drive a listenSeccomp(fd) listener; respond() calls land in
// seccompMock.responses; mountAs/umountAs calls in seccompMock.asCalls. failNext('respond' | 'mountAs' |
// 'umountAs', code) injects failures. chmodAs calls land in chmodAsMock.calls.
import { NativeError, errnoOf, usageError } from '../errors.ts';
import {
  asHelperArgs,
  chmodAsHelperArgs,
  createSeccompListener,
  parseAgentDelivery,
  type AsOutcome,
  type ChmodAsOptions,
  type MountAsOptions,
  type RawAgentDelivery,
  type RawWatchEvent,
  type SeccompAgentConnection,
  type SeccompListener,
  type SeccompNotif,
  type SeccompResponse,
  type UmountAsOptions,
} from '../seccomp-agent.ts';
import { requireAbsolute, takeFailure, type MockFailure } from './common.ts';

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
  return takeFailure(seccompFailures.get(fn), fn, syscall);
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
  if (!Number.isInteger(fd) || fd < 0) throw usageError(`listenSeccomp needs an fd, got ${fd}`);
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

// ---------- chmodAs: calls land in chmodAsMock.calls; failNext(code) injects a failure ----------

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
