// Pure parts of the seccomp agent surface, shared by native/index.ts (real addon) and native/mock.ts:
// the types, the parser of what a runtime sends on the listener socket, and the SeccompListener built
// over any "watch a notify fd" backend. No I/O here: the backend does it.
import { NativeError, errnoOf } from './errors.ts';

/** One connection to the agent socket, as judged: the notify fd, or an error and no fd. */
export interface SeccompAgentConnection {
  /** The parsed JSON payload (the OCI "container process state": ociVersion, fds, pid, metadata, state), or null. */
  state: unknown;
  /** The payload as received (at most 64 KiB). */
  raw: string;
  /** The seccomp notify fd (owned by the receiver: give it to listenSeccomp or close it), or null on error. */
  notifyFd: number | null;
  /** One line saying what was wrong (bad JSON, no fd, fds that do not match the payload...). */
  error?: string;
}

/** Why a string argument is null: NULL pointer, not readable, no NUL within PATH_MAX, not read (binary data). */
export type SeccompStringIssue = 'null' | 'unreadable' | 'truncated' | 'binary';

/** One notification, its pointer arguments read from the target's memory and checked still valid. */
export interface SeccompNotif {
  id: bigint;
  /** Thread id of the caller in the agent's pid namespace (0 if not visible there). */
  pid: number;
  /** 'mount' | 'umount2' | 'open_tree' | 'move_mount' | 'fsopen' | 'fsconfig' | 'fsmount' | 'fspick' |
   *  'mount_setattr' | 'chmod' | 'fchmod' | 'fchmodat' | 'fchmodat2' | 'unknown' */
  syscall: string;
  nr: number;
  arch: number;
  /** The six raw syscall arguments. */
  args: bigint[];
  /**
   * Pointer arguments read as strings, by name (see native/src/seccomp.cc): mount source/target/fstype/
   * data, umount2 target, open_tree/fspick/mount_setattr/chmod/fchmodat/fchmodat2 path, move_mount
   * from_path/to_path, fsopen fsname, fsconfig key/value. null when not read; stringIssues says why.
   */
  strings: Record<string, string | null>;
  stringIssues?: Record<string, SeccompStringIssue>;
  /** CLOCK_MONOTONIC µs (process.hrtime's clock) when the kernel handed it over / its arguments were read. */
  recvUs?: number;
  readUs?: number;
  /** mount_setattr's struct mount_attr (when its size argument is >= 32 and it could be read). */
  mountAttr?: { attrSet: bigint; attrClr: bigint; propagation: bigint; usernsFd: bigint };
  /**
   * Set when the watcher thread sent it to the performer itself (the fast path, FastTableSpec): the run
   * id (listener.fastOutcome tells how it went) and the rule it matched. The caller is answered there.
   */
  fastId?: number;
  /** Which push of the table (which performer) it went to. */
  fastGen?: number;
  fastRule?: string;
}

/** One rule of the native fast path (actors/vetter/fast-path.ts compiles them; native/src/seccomp.cc matches). */
export interface FastRuleSpec {
  name: string;
  syscall: 'mount' | 'umount2';
  /** The index of the flags argument; `all` bits must be set there, `none` clear. */
  flagsArg: number;
  all: bigint;
  none: bigint;
  /** The fstype string must be exactly this. */
  fstype?: string;
  /** No uid=/gid= option in data. */
  dataNoIds: boolean;
  op: 'mount' | 'umount';
}

/** A container's fast path: its rules, what every run gets (--protect-id, --ro-dev), and its call budget. */
export interface FastTableSpec {
  rules: readonly FastRuleSpec[];
  protect: readonly number[];
  roDevs: readonly string[];
  ratePerSecond: number;
  burst: number;
}

export type SeccompResponse = { kind: 'continue' } | { kind: 'errno'; errno: number } | { kind: 'value'; val: number };

/**
 * The notifications of one notify fd. Iterate it (for await) to receive them; answer each with
 * respond(). Notifications whose target left the syscall while its arguments were read are dropped.
 * Iteration ends when the filter has no users any more (container gone) or on close(); breaking out
 * of a loop does not close the listener.
 */
export interface SeccompListener extends AsyncIterable<SeccompNotif> {
  /** SECCOMP_IOCTL_NOTIF_SEND. Rejects with a NativeError; code ENOENT when the target is gone (expected). */
  respond(id: bigint, r: SeccompResponse): Promise<void>;
  /** SECCOMP_IOCTL_NOTIF_ID_VALID: whether the call is still waiting for an answer. */
  idValid(id: bigint): boolean;
  /** Stops watching and closes the notify fd. */
  close(): Promise<void>;
  /** Settles when the listener is closed (by close() or because every user of the filter is gone). */
  readonly closed: Promise<void>;
  /** The notify fd while open (e.g. for mountAs's ID_VALID check), -1 once closed. */
  readonly fd: number;
  /**
   * Hands the fast path's table to the watcher thread, with its line to this fd's performer (started
   * if need be). false: no fast path (no performer, closed, or switched off by ECI_FAST_PATH=0). Calling
   * it again is cheap; after the performer was replaced it is pushed again with the new one's line.
   */
  fastPath?(t: FastTableSpec): boolean;
  /** A call that went the vetter's path: counted against the fast path's budget too (one budget for both). */
  fastCharge?(): void;
  /** How the fast-path run `fastId` went (as mountAs's result); rejects with a FastFallbackError when nothing was run. */
  fastOutcome?(n: { fastId: number; fastGen?: number }): Promise<AsOutcome>;
}

/** The performer ran nothing for a fast-path request (no spare could be forked): the caller is still waiting. */
export class FastFallbackError extends Error {
  readonly code = 'EFASTFALLBACK';
}

/** What the addon's listener thread delivers for one connection. */
export interface RawAgentDelivery {
  payload: string;
  fds: number[];
  truncated?: boolean;
  timedOut?: boolean;
}

/** What the addon's watcher delivers: a notification, or the end. */
export type RawWatchEvent =
  | (SeccompNotif & { valid: boolean; closed?: undefined })
  | { closed: true; error?: string };

const MAX_PAYLOAD = 64 * 1024;

function oneLine(s: string, max = 160): string {
  const flat = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

/**
 * Judges one connection: runc sends compact JSON {"ociVersion","fds":["seccompFd"],"pid","metadata",
 * "state":{...,"id","status","bundle"}} with the notify fd in SCM_RIGHTS. The fd whose index matches
 * "seccompFd" in `fds` is the notify fd; every other fd is returned in `close`, as are all fds when the
 * connection is rejected (payload too large, not JSON, no "seccompFd", fd count not matching `fds`,
 * no pid/state.id).
 */
export function parseAgentDelivery(d: RawAgentDelivery): { conn: SeccompAgentConnection; close: number[] } {
  const raw = d.payload;
  let state: unknown = null;
  let jsonError: string | undefined;
  try {
    state = JSON.parse(raw);
  } catch (e) {
    jsonError = (e as Error).message;
  }
  const reject = (error: string) => ({ conn: { state, raw, notifyFd: null, error: oneLine(error) }, close: [...d.fds] });
  if (d.truncated || raw.length > MAX_PAYLOAD) return reject(`payload larger than ${MAX_PAYLOAD} bytes`);
  if (jsonError !== undefined) {
    const how = d.timedOut ? ' (sender went silent for 5 s without closing)' : '';
    return reject(raw.length === 0 ? `empty payload${how}` : `payload is not JSON${how}: ${jsonError}`);
  }
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return reject('payload is not a JSON object');
  const o = state as Record<string, unknown>;
  const names = o.fds;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))
    return reject('payload has no "fds" list of names');
  const idx = names.indexOf('seccompFd');
  if (idx < 0) return reject(`payload names no "seccompFd" in fds ${JSON.stringify(names)}`);
  if (d.fds.length === 0) return reject('no fd received (SCM_RIGHTS)');
  if (d.fds.length !== names.length)
    return reject(`received ${d.fds.length} fds but the payload names ${names.length} (${names.join(',')})`);
  const st = o.state as Record<string, unknown> | undefined;
  if (typeof o.pid !== 'number' || !Number.isInteger(o.pid) || o.pid <= 0) return reject('payload has no valid "pid"');
  if (typeof st !== 'object' || st === null || typeof st.id !== 'string' || st.id === '')
    return reject('payload has no "state.id"');
  const notifyFd = d.fds[idx];
  return { conn: { state, raw, notifyFd }, close: d.fds.filter((_, i) => i !== idx) };
}

/** The fd-level operations a SeccompListener needs. */
export interface SeccompListenerBackend {
  fd: number;
  /** Starts delivering events; returns a stopper that also closes the fd. */
  watch(cb: (e: RawWatchEvent) => void): { close(): void };
  respond(id: bigint, r: SeccompResponse): void;
  idValid(id: bigint): boolean;
}

function closedError(): NativeError {
  return new NativeError({
    code: 'ENOENT',
    errno: errnoOf('ENOENT'),
    syscall: 'ioctl',
    message: 'ENOENT: seccomp listener is closed (the target is gone)',
  });
}

export function createSeccompListener(backend: SeccompListenerBackend): SeccompListener {
  const queue: SeccompNotif[] = [];
  const waiting: ((r: IteratorResult<SeccompNotif>) => void)[] = [];
  let done = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const finish = () => {
    if (done) return;
    done = true;
    queue.length = 0; // none of them can be answered any more
    for (const w of waiting.splice(0)) w({ value: undefined, done: true });
    resolveClosed();
  };

  const handle = backend.watch((e) => {
    if (done) return;
    if (e.closed) {
      finish();
      return;
    }
    if (!e.valid) return; // the target left the syscall while we read its memory
    const { valid: _valid, closed: _closed, ...n } = e;
    const w = waiting.shift();
    if (w) w({ value: n, done: false });
    else queue.push(n);
  });

  return {
    get fd() {
      return done ? -1 : backend.fd;
    },
    closed,
    respond(id, r) {
      if (done) return Promise.reject(closedError());
      try {
        backend.respond(id, r);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(NativeError.from(err));
      }
    },
    idValid(id) {
      if (done) return false;
      try {
        return backend.idValid(id);
      } catch {
        return false;
      }
    },
    close() {
      if (!done) {
        handle.close();
        finish();
      }
      return closed;
    },
    [Symbol.asyncIterator](): AsyncIterator<SeccompNotif> {
      return {
        next() {
          const n = queue.shift();
          if (n) return Promise.resolve({ value: n, done: false });
          if (done) return Promise.resolve({ value: undefined, done: true });
          return new Promise((r) => waiting.push(r));
        },
        return() {
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  };
}

/**
 * The notification a mountAs/umountAs performs. `answer`: the performer may answer it itself, at once,
 * with the outcome (0, the call's own errno, or EPERM); the result then says so (AsOutcome.answered),
 * and the caller must not answer again. Without a performer (fallback paths) it is left to the caller.
 */
export interface AsNotify { fd: number; id: bigint; answer?: boolean }

/**
 * How a mountAs/umountAs went, beyond success or the rejection: `answered` when the notification was
 * answered for the caller (errno 0: the call returned 0; atUs: process.hrtime's clock, in us). A
 * rejection carries the same as its `answered` property.
 */
export interface AsOutcome { answered?: { errno: number; atUs: number; sendErrno: number } }

/** The `answered` of a rejected mountAs/umountAs, if the notification was answered. */
export function answeredOf(e: unknown): AsOutcome['answered'] {
  const a = (e as { answered?: unknown } | null)?.answered;
  return a && typeof a === 'object' ? (a as AsOutcome['answered']) : undefined;
}

/** Options of mountAs: the (already vetted) arguments of the mount(2) to perform for process pid. */
export interface MountAsOptions {
  pid: number;
  source?: string | null;
  target: string;
  fstype?: string | null;
  flags?: number | bigint;
  data?: string | null;
  /** The notification being answered: the helper re-checks it is valid after pinning the process. */
  notify?: AsNotify;
  /** Mount ids of eci-managed mounts: moving them is refused (EPERM) on the mount itself. */
  protect?: number[];
  /** "major:minor" of filesystems read-only at container start: a read-only mount of them never becomes writable. */
  roDevs?: string[];
}

export interface UmountAsOptions {
  pid: number;
  target: string;
  flags?: number | bigint;
  notify?: AsNotify;
  /** Mount ids of eci-managed mounts: unmounting them is refused (EPERM). */
  protect?: number[];
}

/** eci-helper arguments for mount-as/umount-as (without the notify fd plumbing). */
export function asHelperArgs(kind: 'mount-as' | 'umount-as', o: MountAsOptions | UmountAsOptions, notifFdInChild?: number): string[] {
  if (!Number.isInteger(o.pid) || o.pid <= 0) throw new TypeError(`${kind}: pid must be a positive integer`);
  if (typeof o.target !== 'string' || o.target === '' || o.target.includes('\0'))
    throw new TypeError(`${kind}: target must be a non-empty string without NUL`);
  const args = [kind, '--pid', String(o.pid)];
  if (kind === 'mount-as') {
    const m = o as MountAsOptions;
    for (const [k, v] of [['source', m.source], ['fstype', m.fstype], ['data', m.data]] as const) {
      if (v === undefined || v === null) continue;
      if (v.includes('\0')) throw new TypeError(`${kind}: ${k} contains NUL`);
      args.push(`--${k}`, v);
    }
  }
  args.push('--target', o.target);
  if (o.flags !== undefined) args.push('--flags', BigInt(o.flags).toString());
  if (o.notify && notifFdInChild !== undefined) args.push('--notif-fd', String(notifFdInChild), '--notif-id', o.notify.id.toString());
  for (const id of o.protect ?? []) args.push('--protect-id', String(id));
  if (kind === 'mount-as') for (const d of (o as MountAsOptions).roDevs ?? []) args.push('--ro-dev', d);
  return args;
}

/**
 * Options of chmodAs: a chmod-family call with S_ISUID/S_ISGID in the mode, performed for process pid.
 * The object is `path` (relative to the caller's `dirfd`, or to its cwd), or the caller's `fd` (fchmod).
 */
export interface ChmodAsOptions {
  pid: number;
  /** Which call this answers (only in messages). */
  syscall?: 'chmod' | 'fchmod' | 'fchmodat' | 'fchmodat2';
  path?: string;
  /** An fd number in the caller (fchmodat/fchmodat2's dirfd); absent or AT_FDCWD (-100): the caller's cwd. */
  dirfd?: number;
  /** An fd number in the caller (fchmod). */
  fd?: number;
  mode: number;
  /** fchmodat2's flags: AT_SYMLINK_NOFOLLOW (0x100), AT_EMPTY_PATH (0x1000). */
  flags?: number;
  notify?: { fd: number; id: bigint };
  /** Mount ids of the container's volumes: a setuid/setgid mode there is refused (EPERM). */
  protect?: number[];
  /** "major:minor" of the volumes' filesystems: also refused on any other mount of them (a bind of a volume). */
  protectDevs?: string[];
}

/** eci-helper arguments for chmod-as (without the notify fd plumbing). */
export function chmodAsHelperArgs(o: ChmodAsOptions, notifFdInChild?: number): string[] {
  const kind = 'chmod-as';
  if (!Number.isInteger(o.pid) || o.pid <= 0) throw new TypeError(`${kind}: pid must be a positive integer`);
  if (!Number.isInteger(o.mode) || o.mode < 0 || o.mode > 0o7777) throw new TypeError(`${kind}: mode must be within 0..07777`);
  const isFd = (v: unknown) => Number.isInteger(v) && (v as number) >= -2147483648 && (v as number) <= 2147483647;
  if ((o.fd === undefined) === (o.path === undefined)) throw new TypeError(`${kind}: exactly one of fd and path`);
  const args = [kind, '--pid', String(o.pid)];
  if (o.fd !== undefined) {
    if (!isFd(o.fd)) throw new TypeError(`${kind}: fd must be an int`);
    args.push('--fd', String(o.fd));
  } else {
    if (typeof o.path !== 'string' || o.path.includes('\0')) throw new TypeError(`${kind}: path must be a string without NUL`);
    if (o.dirfd !== undefined) {
      if (!isFd(o.dirfd)) throw new TypeError(`${kind}: dirfd must be an int`);
      args.push('--dirfd', String(o.dirfd));
    }
    args.push('--path', o.path);
  }
  args.push('--mode', `0${o.mode.toString(8)}`);
  if (o.flags !== undefined) {
    if (!Number.isInteger(o.flags)) throw new TypeError(`${kind}: flags must be an int`);
    args.push('--flags', String(o.flags >>> 0));
  }
  if (o.syscall) args.push('--syscall', o.syscall);
  if (o.notify && notifFdInChild !== undefined) args.push('--notif-fd', String(notifFdInChild), '--notif-id', o.notify.id.toString());
  for (const id of o.protect ?? []) args.push('--protect-id', String(id));
  for (const d of o.protectDevs ?? []) args.push('--protect-dev', d);
  return args;
}
