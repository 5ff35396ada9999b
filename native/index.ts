// The only TypeScript way into eci's native code: the eci-helper executable (mounts that need a user
// namespace) and the eci_native addon (calls Node can make from its own process).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeError, errnoOf, parseHelperOutput } from './errors.ts';

export { NativeError, parseHelperOutput } from './errors.ts';
export type { HelperExit, NativeErrorInit } from './errors.ts';

// A host id range mapped to container id 0: the one IdRange type (pure, beside the machines).
import type { IdRange } from '../statecharts/events.ts';
export type { IdRange } from '../statecharts/events.ts';

export interface RootfsOverlayOptions {
  /** Directory that holds every layer (e.g. /var/lib/docker/overlay2); it is idmapped as a whole. */
  base: string;
  /** Lower layers, top first, all under base. Symlinks inside base (Docker's l/SHORT) are fine. */
  lower: string[];
  upper: string;
  work: string;
  target: string;
  uid: IdRange;
  gid: IdRange;
}

export interface RootfsBindOptions {
  source: string;
  target: string;
  uid: IdRange;
  gid: IdRange;
}

export interface UnmountOptions {
  /** MNT_DETACH: lazy unmount. */
  detach?: boolean;
}

interface Addon {
  cloexecInherited(): void;
  umount2(path: string, flags: number): void;
  isMountpoint(path: string): boolean;
  bindMount(source: string, target: string): void;
  idmapBinds(binds: IdmapBind[], uid: number, gid: number, size: number): void;
  constants: { MNT_FORCE: number; MNT_DETACH: number; MNT_EXPIRE: number; UMOUNT_NOFOLLOW: number };
}

/** Longest a helper run may take before it is killed (it normally takes a few milliseconds). */
const HELPER_TIMEOUT_MS = 60_000;

// Typed by hand: under `deno check` with this repo's tsconfig (lib ES2022), ImportMeta has no `url`.
const moduleURL = (import.meta as { url: string }).url;

/** A file under native/, whether this module runs from native/ or from a compiled dist/native/. */
function nativeFile(rel: string): string {
  const here = fileURLToPath(new URL(rel, moduleURL));
  if (existsSync(here)) return here;
  const fromDist = fileURLToPath(new URL(`../../native/${rel}`, moduleURL));
  return existsSync(fromDist) ? fromDist : here;
}

/** Absolute path of native/bin/eci-helper (built by `npm run build`). */
export function helperPath(): string {
  return nativeFile('./bin/eci-helper');
}

let addon: Addon | undefined;

function loadAddon(): Addon {
  if (addon) return addon;
  const file = nativeFile('./build/Release/eci_native.node');
  try {
    addon = createRequire(moduleURL)(file) as Addon;
  } catch (cause) {
    const missing = !existsSync(file);
    throw new NativeError({
      code: missing ? 'ENOENT' : 'ENOEXEC',
      errno: errnoOf(missing ? 'ENOENT' : 'ENOEXEC'),
      syscall: 'dlopen',
      message: missing ? `eci native addon is not built (npm run build): ${file}` : `cannot load ${file}`,
      path: file,
      cause,
    });
  }
  return addon;
}

function usage(message: string): NativeError {
  return new NativeError({ code: 'EUSAGE', errno: errnoOf('EUSAGE'), syscall: '', message });
}

function mappingArgs(uid: IdRange, gid: IdRange): string[] {
  for (const [name, r] of [['uid', uid], ['gid', gid]] as const) {
    if (!Number.isInteger(r.hostID) || r.hostID < 0 || !Number.isInteger(r.size) || r.size < 1 ||
        r.hostID + r.size > 0xffffffff)
      throw usage(`${name} range ${r.hostID}+${r.size} is not a valid host id range`);
  }
  if (uid.size !== gid.size) throw usage(`uid and gid ranges must have the same size (${uid.size} != ${gid.size})`);
  return ['--uid-host', String(uid.hostID), '--gid-host', String(gid.hostID), '--size', String(uid.size)];
}

/** Runs eci-helper; resolves on {"ok":true}, rejects with the NativeError it reports. */
function runHelper(args: string[]): Promise<void> {
  return runHelperWithFd(args, undefined);
}

/**
 * Mounts on o.target an overlay of idmapped layers, so that container root (host uid o.uid.hostID) owns
 * the rootfs and its writes land in o.upper as uid 0. No chown anywhere.
 */
export async function mountRootfsOverlay(o: RootfsOverlayOptions): Promise<void> {
  const ids = mappingArgs(o.uid, o.gid);
  if (o.lower.length === 0) throw usage('an overlay needs at least one lower layer');
  const bad = o.lower.find((l) => l.includes(':'));
  if (bad !== undefined) throw usage(`lower layer ${bad} contains ':'`);
  await runHelper([
    'rootfs-overlay', ...ids, '--base', o.base, '--lower', o.lower.join(':'),
    '--upper', o.upper, '--work', o.work, '--target', o.target,
  ]);
}

/** Mounts on o.target an idmapped bind mount of the plain directory rootfs o.source. */
export async function mountRootfsBind(o: RootfsBindOptions): Promise<void> {
  const ids = mappingArgs(o.uid, o.gid);
  await runHelper(['rootfs-bind', ...ids, '--source', o.source, '--target', o.target]);
}

/** umount2(target) (never following a symlink), lazily with detach. Throws NativeError. */
export function unmount(target: string, o: UnmountOptions = {}): void {
  if (!isAbsolute(target)) throw usage(`unmount target must be an absolute path, got ${target}`);
  const native = loadAddon();
  try {
    native.umount2(target, (o.detach ? native.constants.MNT_DETACH : 0) | native.constants.UMOUNT_NOFOLLOW);
  } catch (err) {
    throw NativeError.from(err);
  }
}

/**
 * Marks every fd from 3 up close-on-exec (call once, at manager start): what the manager inherited from
 * whoever started it never reaches its children (nats-server, the fd-holder, helpers in containers).
 */
export function cloexecInherited(): void {
  try {
    loadAddon().cloexecInherited();
  } catch (err) {
    throw NativeError.from(err);
  }
}

/** Whether path (symlinks followed) is the root of a mount; false when it does not exist. */
export function isMountpoint(path: string): boolean {
  const native = loadAddon();
  try {
    return native.isMountpoint(path);
  } catch (err) {
    throw NativeError.from(err);
  }
}

/** Stacks a clone of the mount at `source` (keeping its idmapping; not its submounts) on `target`. */
export function bindMount(source: string, target: string): void {
  if (!isAbsolute(source) || !isAbsolute(target)) throw usage(`bindMount needs absolute paths, got ${source} and ${target}`);
  const native = loadAddon();
  try {
    native.bindMount(source, target);
  } catch (err) {
    throw NativeError.from(err);
  }
}

/** One bind for idmapBinds: `dev`/`ino` are those of the inode the policy checked. */
export interface IdmapBind {
  source: string;
  target: string;
  dev: bigint;
  ino: bigint;
  nosuid?: boolean;
  nodev?: boolean;
  rdonly?: boolean;
}

/**
 * Idmapped bind mounts (container mapping 0 -> uid/gid.hostID), in-process. A source that is no
 * longer the checked inode fails with ESTALE; the final path component is never followed. All or
 * nothing: on failure the binds already made are undone.
 */
export function idmapBinds(binds: IdmapBind[], uid: IdRange, gid: IdRange): void {
  if (uid.size !== gid.size) throw usage('uid and gid ranges must have the same size');
  const native = loadAddon();
  try {
    native.idmapBinds(binds, uid.hostID, gid.hostID, uid.size);
  } catch (err) {
    throw NativeError.from(err);
  }
}

// ---------- seccomp agent: the listener socket runc connects to, and the notify fds it hands over ----------
// (Appended section; the pure parts live in ./seccomp-agent.ts, shared with mock.ts.)
import { spawn as spawnSeccompHelper, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import {
  asHelperArgs,
  createSeccompListener,
  parseAgentDelivery,
  type AsOutcome,
  type MountAsOptions,
  type RawAgentDelivery,
  type RawWatchEvent,
  type SeccompAgentConnection,
  type SeccompListener,
  type SeccompResponse,
  type UmountAsOptions,
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

interface SeccompAddon {
  listen(path: string, cb: (d: RawAgentDelivery) => void): { close(): void };
  watch(fd: number, cb: (e: RawWatchEvent) => void, holderTag?: string): { close(): void };
  respond(fd: number, id: bigint, r: SeccompResponse): void;
  idValid(fd: number, id: bigint): boolean;
  closeFd(fd: number): void;
}

function seccompAddon(): SeccompAddon {
  return (loadAddon() as unknown as { seccomp: SeccompAddon }).seccomp;
}

/**
 * Listens on an AF_UNIX socket at `path` (mode 0600; a stale socket is replaced) for runtimes that hand
 * over a seccomp notify fd (`linux.seccomp.listenerPath`). onConnection runs once per connection, on the
 * event loop; a connection with an error carries no fd (all were closed). The receiver owns notifyFd.
 */
export function serveSeccompAgent(path: string, onConnection: (c: SeccompAgentConnection) => void): { close(): Promise<void> } {
  if (!isAbsolute(path)) throw usage(`seccomp agent socket must be an absolute path, got ${path}`);
  const s = seccompAddon();
  let handle: { close(): void };
  try {
    handle = s.listen(path, (d) => {
      const { conn, close } = parseAgentDelivery(d);
      for (const fd of close) {
        try {
          s.closeFd(fd);
        } catch {
          /* already gone */
        }
      }
      onConnection(conn);
    });
  } catch (err) {
    throw NativeError.from(err);
  }
  let closed = false;
  return {
    close() {
      if (!closed) {
        closed = true;
        handle.close();
      }
      return Promise.resolve();
    },
  };
}

/**
 * Watches a seccomp notify fd (taking ownership of it) without blocking the event loop. With
 * o.holderTag, each notification's id is noted at the fd-holder (setFdHolderNotes) under that tag.
 */
export function listenSeccomp(fd: number, o: { holderTag?: string } = {}): SeccompListener {
  if (!Number.isInteger(fd) || fd < 0) throw usage(`listenSeccomp needs an fd, got ${fd}`);
  const s = seccompAddon();
  const listener = createSeccompListener({
    fd,
    watch(cb) {
      try {
        return s.watch(fd, cb, o.holderTag);
      } catch (err) {
        throw NativeError.from(err);
      }
    },
    respond: (id, r) => s.respond(fd, id, r),
    idValid: (id) => s.idValid(fd, id),
  });
  void listener.closed.then(() => closePerformer(fd));
  return listener;
}

/**
 * Runs eci-helper with `fd` (a notify fd, if any) as its fd 3; resolves on {"ok":true}. Goes through the
 * helper server (eci-helper serve) when it is up, else spawns the helper; same outputs and errors.
 */
function runHelperWithFd(args: string[], fd: number | undefined): Promise<void> {
  const s = helperServer();
  return s ? s.run(args, fd) : spawnHelperWithFd(args, fd);
}

/** Runs eci-helper as a process of its own (the way without a helper server). */
function spawnHelperWithFd(args: string[], fd: number | undefined): Promise<void> {
  const helper = helperPath();
  return new Promise((resolve, reject) => {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    if (fd !== undefined) stdio.push(fd);
    const child = spawnSeccompHelper(helper, args, { stdio });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    child.on('error', (e: Error & { code?: string; errno?: number }) => {
      clearTimeout(timer);
      reject(new NativeError({
        code: e.code ?? 'EIO',
        errno: typeof e.errno === 'number' ? Math.abs(e.errno) : errnoOf('EIO'),
        syscall: 'spawn',
        message: `cannot run ${helper}: ${e.message}`,
        path: helper,
        cause: e,
      }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const failure = parseHelperOutput(stdout, { code, signal, stderr });
      if (failure) reject(failure);
      else resolve();
    });
  });
}

// ---------- helper server: `eci-helper serve`, one per manager, forks a run per request (cmd/serve.h) ----------

interface ServerRun {
  args: string[];
  fd: number | undefined;
  started: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
  guard: NodeJS.Timeout;
}

const signalNames = new Map<number, string>(Object.entries(osConstants.signals).map(([n, v]) => [v as number, n]));

/**
 * A long-lived helper child (`serve`, `perform`) that answers on fd 3 with frames: u32 length, then
 * u32 run id, one kind byte, the rest. The plumbing both share: the child and its socket, the runs
 * in flight with their guard timers, frame parsing, and the kill.
 */
abstract class FramedHelper<R extends { guard: NodeJS.Timeout }> {
  protected readonly child: ChildProcess;
  protected readonly sock: Socket;
  protected readonly runs = new Map<number, R>();
  private nextId = 1;
  private inbuf: Buffer = Buffer.alloc(0);
  dead = false;

  constructor(helper: string, verb: string, extraFd?: number) {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'ignore', 'pipe'];
    if (extraFd !== undefined) stdio.push(extraFd);
    this.child = spawnSeccompHelper(helper, [verb, String(process.pid)], { stdio });
    this.sock = this.child.stdio[3] as Socket;
    this.child.on('error', () => this.fail());
    this.sock.on('error', () => this.fail());
    this.sock.on('close', () => this.fail());
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.child.unref();
    this.sock.unref();
  }

  protected newId(): number {
    const id = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return id;
  }

  /** A run in flight; the helper kills a run at HELPER_TIMEOUT_MS, so one that does not answer by then is broken. */
  protected track(id: number, run: (guard: NodeJS.Timeout) => R): void {
    this.runs.set(id, run(setTimeout(() => this.fail(), HELPER_TIMEOUT_MS + 5_000)));
    if (this.runs.size === 1) this.sock.ref();
  }

  protected settle(id: number): R | undefined {
    const r = this.runs.get(id);
    if (!r) return undefined;
    this.runs.delete(id);
    clearTimeout(r.guard);
    if (this.runs.size === 0 && !this.dead) this.sock.unref();
    return r;
  }

  /** One frame (after the length); false: not a frame this helper sends (the helper is then failed). */
  protected abstract onFrame(id: number, kind: string, f: Buffer): boolean;

  /** Gone or broken: each subclass settles its runs its own way. */
  protected abstract fail(): void;

  private onData(d: Buffer): void {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, d]) : d;
    let off = 0;
    while (this.inbuf.length - off >= 4) {
      const len = this.inbuf.readUInt32LE(off);
      if (len < 5) return this.fail();
      if (this.inbuf.length - off - 4 < len) break;
      const f = this.inbuf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      if (!this.onFrame(f.readUInt32LE(0), String.fromCharCode(f[4]!), f)) return this.fail();
    }
    this.inbuf = off === this.inbuf.length ? Buffer.alloc(0) : this.inbuf.subarray(off);
  }

  /** Marks it dead and ends the child; false if it already was. */
  protected kill(): boolean {
    if (this.dead) return false;
    this.dead = true;
    try {
      this.child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
    this.sock.destroy();
    return true;
  }
}

/**
 * A 'D' frame (id, 'D', i32 code, i32 signal, u32 stdout length, stdout, stderr): the run's error, or
 * undefined. `skip`: bytes between the stdout length and stdout (a performer's 'A' frame).
 */
function doneFailure(f: Buffer, skip = 0): unknown {
  const code = f.readInt32LE(5);
  const sig = f.readInt32LE(9);
  const outLen = f.readUInt32LE(13);
  const at = 17 + skip;
  const stdout = f.subarray(at, at + outLen).toString('utf8');
  const stderr = f.subarray(at + outLen).toString('utf8');
  const exit = sig ? { code: null, signal: signalNames.get(sig) ?? `SIG${sig}`, stderr } : { code, signal: null, stderr };
  return parseHelperOutput(stdout, exit);
}

class HelperServer extends FramedHelper<ServerRun> {
  constructor(helper: string) {
    super(helper, 'serve');
  }

  run(args: string[], fd: number | undefined): Promise<void> {
    let cwd: string;
    try {
      cwd = process.cwd();
    } catch {
      return spawnHelperWithFd(args, fd);
    }
    const env: string[] = [];
    for (const k of Object.keys(process.env)) {
      const v = process.env[k];
      if (v !== undefined) env.push(`${k}=${v}`);
    }
    const strs = [cwd, ...args, ...env];
    if (strs.some((x) => x.includes('\0'))) return spawnHelperWithFd(args, fd); // spawn says what is wrong
    const body = Buffer.from(strs.join('\0') + '\0', 'utf8');
    const id = this.newId();
    const head = Buffer.alloc(20);
    head.writeUInt32LE(16 + body.length, 0);
    head.writeUInt32LE(id, 4);
    head.writeInt32LE(fd ?? -1, 8);
    head.writeUInt32LE(args.length, 12);
    head.writeUInt32LE(env.length, 16);
    return new Promise<void>((resolve, reject) => {
      this.track(id, (guard) => ({ args, fd, started: false, resolve, reject, guard }));
      this.sock.write(Buffer.concat([head, body]));
    });
  }

  protected onFrame(id: number, kind: string, f: Buffer): boolean {
    if (kind === 'S') {
      const r = this.runs.get(id);
      if (r) r.started = true;
    } else if (kind === 'F') {
      const r = this.settle(id);
      if (r) spawnHelperWithFd(r.args, r.fd).then(r.resolve, r.reject);
    } else if (kind === 'D' && f.length >= 17) {
      const r = this.settle(id);
      serverFailures = 0;
      if (!r) return true;
      const failure = doneFailure(f);
      if (failure) r.reject(failure);
      else r.resolve();
    } else {
      return false;
    }
    return true;
  }

  /** The server is gone or broken: runs it never started go to spawn; started ones fail as a killed helper. */
  protected fail(): void {
    if (!this.kill()) return;
    if (server === this) server = undefined;
    if (++serverFailures >= 3) serverRetryAt = Date.now() + 30_000;
    for (const id of [...this.runs.keys()]) {
      const r = this.settle(id)!;
      if (!r.started) spawnHelperWithFd(r.args, r.fd).then(r.resolve, r.reject);
      else r.reject(parseHelperOutput('', { code: null, signal: 'SIGKILL', stderr: 'eci-helper serve died during the run' }));
    }
  }
}

let server: HelperServer | undefined;
let serverFailures = 0;
let serverRetryAt = 0;

/** The helper server, started on first use (and again after it failed); undefined: spawn instead. */
function helperServer(): HelperServer | undefined {
  if (server && !server.dead) return server;
  if (process.env.ECI_HELPER_SERVER === '0' || Date.now() < serverRetryAt) return undefined;
  const helper = helperPath();
  if (!existsSync(helper)) return undefined;
  try {
    server = new HelperServer(helper);
  } catch {
    server = undefined;
  }
  return server;
}

// ---------- performers: `eci-helper perform`, one per notify fd, one fork per vetted mount/umount (cmd/perform.h) ----------

const PERFORM_NOTIFY_FD = 4;

interface PerformRun { resolve: (o: AsOutcome) => void; reject: (e: unknown) => void; fallback: () => void; guard: NodeJS.Timeout }

/** perform.h's request flag: the performer answers the notification itself. */
const PERFORM_ANSWER = 1;
/** An 'A' frame's fields between the stdout length and stdout: u64 answered at, i32 errno answered, i32 send errno. */
const ANSWER_FIELDS = 16;

class Performer extends FramedHelper<PerformRun> {
  /** Requests written before the performer said it is ready: if it dies first, none of them ran. */
  private unconfirmed: Buffer[] | null = [];

  constructor(helper: string, notifyFd: number, private readonly onDead: () => void) {
    super(helper, 'perform', notifyFd);
  }

  /**
   * Runs mount-as/umount-as args (with --notif-fd 4); `fallback` runs the call another way when the
   * performer did not. `answer`: the notification id the performer answers itself.
   */
  run(args: string[], fallback: () => Promise<void>, answer?: bigint): Promise<AsOutcome> {
    const body = Buffer.from(args.join('\0') + '\0', 'utf8');
    const id = this.newId();
    const frame = Buffer.alloc(17 + body.length);
    frame.writeUInt32LE(13 + body.length, 0);
    frame.writeUInt32LE(id, 4);
    frame.writeUInt8(answer === undefined ? 0 : PERFORM_ANSWER, 8);
    frame.writeBigUInt64LE(answer ?? 0n, 9);
    body.copy(frame, 17);
    return new Promise<AsOutcome>((resolve, reject) => {
      this.track(id, (guard) => ({ resolve, reject, fallback: () => void fallback().then(() => resolve({}), reject), guard }));
      if (this.unconfirmed) this.unconfirmed.push(frame);
      else this.sock.write(frame);
    });
  }

  close(): void {
    this.sock.end(); // EOF: the performer exits once its current run is over
  }

  protected onFrame(id: number, kind: string, f: Buffer): boolean {
    if (kind === 'R' && this.unconfirmed) {
      for (const q of this.unconfirmed) this.sock.write(q);
      this.unconfirmed = null;
    } else if (kind === 'F') {
      this.settle(id)?.fallback();
    } else if (kind === 'D' && f.length >= 17) {
      const r = this.settle(id);
      if (!r) return true;
      const failure = doneFailure(f);
      if (failure) r.reject(failure);
      else r.resolve({});
    } else if (kind === 'A' && f.length >= 17 + ANSWER_FIELDS) {
      const r = this.settle(id);
      if (!r) return true;
      const answered = { atUs: Number(f.readBigUInt64LE(17)), errno: f.readInt32LE(25), sendErrno: f.readInt32LE(29) };
      const failure = doneFailure(f, ANSWER_FIELDS);
      if (failure) r.reject(Object.assign(failure as object, { answered }));
      else if (answered.errno) r.reject(Object.assign(new Error(`answered ${answered.errno} without a failure report`), { answered }));
      else r.resolve({ answered });
    } else {
      return false;
    }
    return true;
  }

  /** Gone or broken: runs it never got go another way; a run it had may have happened, so it fails (closed). */
  protected fail(): void {
    if (!this.kill()) return;
    this.onDead();
    const neverSent = this.unconfirmed !== null;
    for (const id of [...this.runs.keys()]) {
      const r = this.settle(id)!;
      if (neverSent) r.fallback();
      else r.reject(parseHelperOutput('', { code: null, signal: 'SIGKILL', stderr: 'eci-helper perform died during the run' }));
    }
  }
}

const performers = new Map<number, Performer>();

/** The performer of notify fd `fd`, started on first use; undefined: run the call another way. */
function performerFor(fd: number): Performer | undefined {
  const p = performers.get(fd);
  if (p && !p.dead) return p;
  if (process.env.ECI_HELPER_SERVER === '0' || process.env.ECI_HELPER_PERFORMER === '0') return undefined;
  const helper = helperPath();
  if (!existsSync(helper)) return undefined;
  try {
    const np: Performer = new Performer(helper, fd, () => {
      if (performers.get(fd) === np) performers.delete(fd);
    });
    performers.set(fd, np);
    return np;
  } catch {
    return undefined;
  }
}

/** The notify fd is closed: so is its performer (a later fd with the same number gets its own). */
function closePerformer(fd: number): void {
  const p = performers.get(fd);
  performers.delete(fd);
  p?.close();
}

function runAsHelper(kind: 'mount-as' | 'umount-as', o: MountAsOptions | UmountAsOptions): Promise<AsOutcome> {
  const viaServer = () => runHelperWithFd(asHelperArgs(kind, o, o.notify ? 3 : undefined), o.notify?.fd);
  const p = o.notify ? performerFor(o.notify.fd) : undefined;
  if (p) return p.run(asHelperArgs(kind, o, PERFORM_NOTIFY_FD), viaServer, o.notify?.answer ? o.notify.id : undefined);
  return viaServer().then(() => ({}));
}

/**
 * mount(2) performed for process o.pid, in its namespaces, root, cwd, ids and capabilities (eci-helper
 * mount-as). Rejects with a NativeError: syscall 'mount' means the mount itself failed and its errno is
 * the answer for the container; any other syscall is a failure to get there (ENOENT/ESRCH: target gone).
 */
export async function mountAs(o: MountAsOptions): Promise<AsOutcome> {
  return runAsHelper('mount-as', o);
}

/** umount2(2) for process o.pid (eci-helper umount-as); errors as for mountAs, with syscall 'umount2'. */
export async function umountAs(o: UmountAsOptions): Promise<AsOutcome> {
  return runAsHelper('umount-as', o);
}

// ---------- procfs: a FUSE directory of read-only files rendered per caller (src/procfs.cc) ----------
// (Appended section.)

export interface ProcFsMountOptions {
  /** Absolute path of an existing empty directory. */
  mountpoint: string;
  /** Plain file names served at the top of the mount, e.g. ['uptime', 'swaps', 'meminfo']. */
  files: string[];
  /**
   * mountProcFs only: per file, how long (ms) an answer for a pid namespace registered with
   * ProcFsMount.cache is reused for reads from that namespace without calling onRead (absent: never).
   */
  cacheMs?: Readonly<Record<string, number>>;
}

/** Renders `file` for the process with host pid `callerPid`; throw (or reject) to fail the read with EIO. */
export type ProcFsReader = (file: string, callerPid: number) => Promise<string> | string;

export interface ProcFsMount {
  /** Fails pending reads with EIO, unmounts (MNT_DETACH) and stops the session thread. Idempotent. */
  close(): Promise<void>;
  /**
   * mountProcFs: lets (on) or stops (off, dropping what was kept) the reuse of onRead's answers to
   * callers in pid namespace `pidns` (inode) for cacheMs. onRead must then answer such callers with the
   * namespace's own view, and fail (not fall back) when the caller is gone.
   */
  cache?(pidns: number, on: boolean): void;
}

interface ProcFsAddon {
  mount(mountpoint: string, files: string[], onRead: (id: number, file: string, pid: number) => void, cacheMs?: number[]): {
    reply(id: number, text: string | null, errno: number): void;
    close(): void;
    cache(pidns: number, on: boolean): void;
  };
}

/** Both FUSE servers: an absolute mountpoint and plain file names. */
function checkFuseFiles(o: { mountpoint: string; files: readonly string[] }): void {
  if (!isAbsolute(o.mountpoint)) throw usage(`procfs mountpoint must be an absolute path, got ${o.mountpoint}`);
  const bad = o.files.find((f) => f === '' || f === '.' || f === '..' || f.includes('/') || f.includes('\0'));
  if (bad !== undefined) throw usage(`procfs file name ${JSON.stringify(bad)} is not a plain name`);
}

/** A read request from the FUSE thread: render with onRead (sync or async) and answer; a throw is EIO. */
function readCallback(onRead: ProcFsReader, answer: (id: number, text: unknown) => void) {
  return (id: number, file: string, pid: number): void => {
    let r: Promise<string> | string;
    try {
      r = onRead(file, pid);
    } catch {
      answer(id, undefined);
      return;
    }
    if (typeof r === 'string') answer(id, r);
    else Promise.resolve(r).then((t) => answer(id, t), () => answer(id, undefined));
  };
}

function fuseMount(handle: { close(): void }): ProcFsMount {
  return {
    close() {
      try {
        handle.close();
      } catch (err) {
        return Promise.reject(NativeError.from(err));
      }
      return Promise.resolve();
    },
  };
}

/**
 * Mounts a FUSE filesystem (allow_other, default_permissions, direct_io) of read-only root-owned files
 * (0444) at o.mountpoint. Every read at offset 0 calls onRead(file, callerPid) and serves its text; an
 * answer later than 2 s fails the read with EIO. Throws NativeError (syscall 'mount') on failure.
 */
export function mountProcFs(o: ProcFsMountOptions, onRead: ProcFsReader): ProcFsMount {
  checkFuseFiles(o);
  const p = (loadAddon() as unknown as { procfs: ProcFsAddon }).procfs;
  let handle: ReturnType<ProcFsAddon['mount']>;
  const answer = (id: number, text: unknown): void => handle.reply(id, typeof text === 'string' ? text : null, typeof text === 'string' ? 0 : errnoOf('EIO'));
  try {
    const ttl = o.cacheMs ? o.files.map((f) => o.cacheMs?.[f] ?? 0) : undefined;
    handle = p.mount(o.mountpoint, [...o.files], readCallback(onRead, answer), ttl);
  } catch (err) {
    throw NativeError.from(err);
  }
  return { ...fuseMount(handle), cache: (pidns, on) => handle.cache(pidns, on) };
}

// ---------- chmodAs: a vetted setuid/setgid chmod done for a container process (eci-helper chmod-as) ----------
// (Appended section.)
import { chmodAsHelperArgs, type ChmodAsOptions } from './seccomp-agent.ts';
export type { ChmodAsOptions } from './seccomp-agent.ts';

/**
 * chmod(2) with S_ISUID/S_ISGID for process o.pid, in its namespaces, root, cwd, ids and capabilities;
 * refused with EPERM when the object is on one of o.protect (mount ids) / o.protectDevs. Rejects with a
 * NativeError: syscall 'chmod' means the chmod itself failed (or was refused) and its errno is the
 * answer for the container; any other syscall is a failure to get there (ENOENT/ESRCH: caller gone).
 */
export function chmodAs(o: ChmodAsOptions): Promise<void> {
  return runHelperWithFd(chmodAsHelperArgs(o, o.notify ? 3 : undefined), o.notify?.fd);
}

// ---------- sysctl views: a FUSE directory of per-caller files, some writable (src/procfs.cc mountRw) ----------
// (Appended section.)

export interface RwFsMountOptions extends ProcFsMountOptions {
  /** The subset of `files` that callers may write (mode 0666; judge callers in onWrite). */
  writable: string[];
}

/**
 * Judges a write of `data` to `file` by host pid `callerPid` with host uid `callerUid`: resolve to
 * accept the whole write; reject with an error carrying `code` (e.g. 'EINVAL', 'EACCES') to fail it
 * with that errno (EIO for anything else).
 */
export type RwFsWriter = (file: string, callerPid: number, callerUid: number, data: string) => Promise<void> | void;

interface RwFsAddon {
  mountRw(mountpoint: string, files: string[], writable: string[],
    onRead: (id: number, file: string, pid: number) => void,
    onWrite: (id: number, file: string, pid: number, uid: number, data: string) => void): {
    reply(id: number, text: string | null, errno: number): void;
    replyWrite(id: number, errno: number): void;
    close(): void;
  };
}

/**
 * mountProcFs with writable files: reads as there; a write at offset 0 of a writable file calls
 * onWrite and fails with the errno of its rejection (2 s without an answer: EIO); writes at later
 * offsets are accepted and ignored; O_TRUNC is accepted. Throws NativeError (syscall 'mount').
 */
export function mountRwFs(o: RwFsMountOptions, onRead: ProcFsReader, onWrite: RwFsWriter): ProcFsMount {
  checkFuseFiles(o);
  const p = (loadAddon() as unknown as { procfs: RwFsAddon }).procfs;
  let handle: ReturnType<RwFsAddon['mountRw']>;
  const answer = (id: number, text: unknown): void => handle.reply(id, typeof text === 'string' ? text : null, typeof text === 'string' ? 0 : errnoOf('EIO'));
  const answerWrite = (id: number, err: unknown): void => {
    if (err === undefined) return handle.replyWrite(id, 0);
    const code = (err as { code?: unknown })?.code;
    let n = typeof code === 'string' ? errnoOf(code) : 0;
    if (!Number.isInteger(n) || n <= 0) n = errnoOf('EIO');
    handle.replyWrite(id, n);
  };
  try {
    handle = p.mountRw(o.mountpoint, [...o.files], [...o.writable], readCallback(onRead, answer), (id, file, pid, uid, data) => {
      let r: Promise<void> | void;
      try {
        r = onWrite(file, pid, uid, data);
      } catch (e) {
        answerWrite(id, e ?? new Error('EIO'));
        return;
      }
      Promise.resolve(r).then(() => answerWrite(id, undefined), (e) => answerWrite(id, e ?? new Error('EIO')));
    });
  } catch (err) {
    throw NativeError.from(err);
  }
  return fuseMount(handle);
}

/**
 * Puts a clone of the host mount at `source` (an eci FUSE file) over `target` inside the container
 * of process `pid` (eci-helper bind-into): for targets runc refuses, such as /proc/sys entries.
 */
export async function bindInto(pid: number, source: string, target: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw usage(`bindInto: bad pid ${pid}`);
  if (!isAbsolute(source) || !isAbsolute(target)) throw usage('bindInto needs absolute paths');
  await runHelper(['bind-into', '--pid', String(pid), '--source', source, '--target', target]);
}

/**
 * bindInto for many files in one helper run (a container gets a dozen). A target missing in the
 * container is skipped; another failure stops there (earlier pairs stay) and rejects.
 */
export async function bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw usage(`bindIntoMany: bad pid ${pid}`);
  if (pairs.length === 0) return;
  if (pairs.length > 64) throw usage('bindIntoMany: at most 64 files per run');
  if (pairs.some((p) => !isAbsolute(p.source) || !isAbsolute(p.target))) throw usage('bindIntoMany needs absolute paths');
  await runHelper(['bind-into', '--pid', String(pid), ...pairs.flatMap((p) => ['--source', p.source, '--target', p.target])]);
}

/**
 * setdomainname(2) in the UTS namespace of process `pid` (a container's init), entered through its
 * user namespace (eci-helper set-domainname): for Docker's --domainname, which runc would write to
 * /proc/sys, refused in a user namespace.
 */
export async function setDomainname(pid: number, name: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw usage(`setDomainname: bad pid ${pid}`);
  if (Buffer.byteLength(name) > 64 || name.includes('\0')) throw usage('setDomainname: a domain name is at most 64 bytes, without NUL');
  await runHelper(['set-domainname', '--pid', String(pid), '--name', name]);
}

// ---------- fd-holder: keeps notify fds across manager restarts (cmd/eci-fdholder.c, src/seccomp.cc) ----------
// (Appended section.)

/** One connection to a running eci-fdholder (requests are synchronous, 2 s timeouts). */
export interface FdHolderConnection {
  readonly fd: number;
  /** One request ("PUT <tag>" with passFd, "DROP <tag>", "TAKE", "PING", "QUIT"); throws NativeError. */
  call(request: string, passFd?: number): FdHolderAnswer;
  close(): void;
}

/** An fd-holder's answer: the reply line; for TAKE, the fds (owned by the caller) and the noted ids. */
export interface FdHolderAnswer {
  reply: string;
  taken: { tag: string; fd: number }[];
  pending: { tag: string; id: bigint }[];
}

interface HolderAddon {
  holderConnect(path: string): number;
  holderCall(fd: number, request: string, passFd?: number): FdHolderAnswer;
  holderNotes(fd: number): void;
  closeFd(fd: number): void;
}

export function fdHolderPath(): string {
  return nativeFile('./bin/eci-fdholder');
}

/** Connects to the fd-holder at `path` (AF_UNIX SOCK_SEQPACKET); throws NativeError (ENOENT, ECONNREFUSED...). */
export function connectFdHolder(path: string): FdHolderConnection {
  if (!isAbsolute(path)) throw usage(`fd-holder socket must be an absolute path, got ${path}`);
  const s = (loadAddon() as unknown as { seccomp: HolderAddon }).seccomp;
  let fd: number;
  try {
    fd = s.holderConnect(path);
  } catch (err) {
    throw NativeError.from(err);
  }
  let open = true;
  return {
    fd,
    call(request, passFd) {
      if (!open) throw new NativeError({ code: 'EBADF', errno: errnoOf('EBADF'), syscall: 'sendmsg', message: 'EBADF: fd-holder connection is closed' });
      try {
        return s.holderCall(fd, request, passFd);
      } catch (err) {
        throw NativeError.from(err);
      }
    },
    close() {
      if (!open) return;
      open = false;
      try { s.closeFd(fd); } catch { /* already gone */ }
    },
  };
}

/** Closes an fd this process owns (e.g. a notify fd taken from the fd-holder that nobody adopts). */
export function closeFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw usage(`closeFd needs an fd, got ${fd}`);
  try {
    (loadAddon() as unknown as { seccomp: HolderAddon }).seccomp.closeFd(fd);
  } catch (err) {
    throw NativeError.from(err);
  }
}

/**
 * Where the seccomp watchers note each notification id they receive ("SEEN <tag> <id>", fire and
 * forget): a connection of its own to the fd-holder, or undefined to stop. The caller keeps it open.
 */
export function setFdHolderNotes(conn: FdHolderConnection | undefined): void {
  (loadAddon() as unknown as { seccomp: HolderAddon }).seccomp.holderNotes(conn ? conn.fd : -1);
}
