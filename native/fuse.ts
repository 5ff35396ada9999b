// FUSE directories of files rendered per caller (src/procfs.cc): read-only ones for /proc (mountProcFs)
// and ones with writable files for the sysctl views (mountRwFs).
import { isAbsolute } from 'node:path';
import { loadAddon, type ProcFsAddon } from './addon.ts';
import { NativeError, errnoOf, usageError } from './errors.ts';

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

/**
 * Renders `file` for the process with host pid `callerPid`, read at the top level (`view` '') or in
 * view `view` (ProcFsMount.addView); throw (or reject) to fail the read with EIO.
 */
export type ProcFsReader = (file: string, callerPid: number, view: string) => Promise<string> | string;

export interface ProcFsMount {
  /** Fails pending reads with EIO, unmounts (MNT_DETACH) and stops the session thread. Idempotent. */
  close(): Promise<void>;
  /**
   * mountProcFs: lets (on) or stops (off, dropping what was kept) the reuse of onRead's answers to
   * callers in pid namespace `pidns` (inode) for cacheMs. onRead must then answer such callers with the
   * namespace's own view, and fail (not fall back) when the caller is gone.
   */
  cache?(pidns: number, on: boolean): void;
  /**
   * Adds directory `name` (a plain name other than the files') holding the same files under inodes of
   * their own, for one container: onRead must answer its reads with that container's view whoever
   * reads (splice and sendfile read through the page cache of the inode, shared by every reader of it
   * whatever direct_io says), and mountRwFs's onWrite gets its writes with `view` set. mountProcFs
   * reuses its answers for cacheMs. Idempotent.
   */
  addView?(name: string): void;
  /** Removes view `name` (and mountProcFs's kept answers); its open files read on. Idempotent. */
  removeView?(name: string): void;
}


/** Both FUSE servers: an absolute mountpoint and plain file names. */
function checkFuseFiles(o: { mountpoint: string; files: readonly string[] }): void {
  if (!isAbsolute(o.mountpoint)) throw usageError(`procfs mountpoint must be an absolute path, got ${o.mountpoint}`);
  const bad = o.files.find((f) => f === '' || f === '.' || f === '..' || f.includes('/') || f.includes('\0'));
  if (bad !== undefined) throw usageError(`procfs file name ${JSON.stringify(bad)} is not a plain name`);
}

/** A read request from the FUSE thread: render with onRead (sync or async) and answer; a throw is EIO. */
function readCallback(onRead: ProcFsReader, answer: (id: number, text: unknown) => void) {
  return (id: number, file: string, pid: number, view = ''): void => {
    let r: Promise<string> | string;
    try {
      r = onRead(file, pid, view);
    } catch {
      answer(id, undefined);
      return;
    }
    if (typeof r === 'string') answer(id, r);
    else Promise.resolve(r).then((t) => answer(id, t), () => answer(id, undefined));
  };
}

function fuseMount(handle: { close(): void; addView(name: string): void; removeView(name: string): void }): ProcFsMount {
  return {
    close() {
      try {
        handle.close();
      } catch (err) {
        return Promise.reject(NativeError.from(err));
      }
      return Promise.resolve();
    },
    addView: (name) => {
      try {
        handle.addView(name);
      } catch (err) {
        throw NativeError.from(err);
      }
    },
    removeView: (name) => handle.removeView(name),
  };
}

/**
 * Mounts a FUSE filesystem (allow_other, default_permissions, direct_io) of read-only root-owned files
 * (0444) at o.mountpoint. Every read at offset 0 calls onRead(file, callerPid) and serves its text; an
 * answer later than 2 s fails the read with EIO. Throws NativeError (syscall 'mount') on failure.
 */
export function mountProcFs(o: ProcFsMountOptions, onRead: ProcFsReader): ProcFsMount {
  checkFuseFiles(o);
  const p = loadAddon().procfs;
  let handle: ReturnType<ProcFsAddon['mount']>;
  const answer = (id: number, text: unknown): void => handle.reply(id, typeof text === 'string' ? text : null, typeof text === 'string' ? 0 : errnoOf('EIO'));
  try {
    const ttl = o.cacheMs ? o.files.map((f) => o.cacheMs?.[f] ?? 0) : undefined;
    handle = p.mount(o.mountpoint, [...o.files], readCallback(onRead, answer), ttl);
  } catch (err) {
    throw NativeError.from(err);
  }
  return {
    ...fuseMount(handle),
    cache: (pidns, on) => handle.cache(pidns, on),
  };
}

export interface RwFsMountOptions extends ProcFsMountOptions {
  /** The subset of `files` that callers may write (mode 0666; judge callers in onWrite). */
  writable: string[];
}

/**
 * Judges a write of `data` to `file` by host pid `callerPid` with host uid `callerUid`, at the top
 * level (`view` '') or in view `view`: resolve to accept the whole write; reject with an error
 * carrying `code` (e.g. 'EINVAL', 'EACCES') to fail it with that errno (EIO for anything else).
 */
export type RwFsWriter = (file: string, callerPid: number, callerUid: number, data: string, view: string) => Promise<void> | void;


/**
 * mountProcFs with writable files: reads as there; a write at offset 0 of a writable file calls
 * onWrite and fails with the errno of its rejection (2 s without an answer: EIO); writes at later
 * offsets are accepted and ignored; O_TRUNC is accepted. Throws NativeError (syscall 'mount').
 */
export function mountRwFs(o: RwFsMountOptions, onRead: ProcFsReader, onWrite: RwFsWriter): ProcFsMount {
  checkFuseFiles(o);
  const p = loadAddon().procfs;
  let handle: ReturnType<ProcFsAddon['mountRw']>;
  const answer = (id: number, text: unknown): void => handle.reply(id, typeof text === 'string' ? text : null, typeof text === 'string' ? 0 : errnoOf('EIO'));
  const answerWrite = (id: number, err: unknown): void => {
    if (err === undefined) return handle.replyWrite(id, 0);
    const code = (err as { code?: unknown })?.code;
    let n = typeof code === 'string' ? errnoOf(code) : 0;
    if (!Number.isInteger(n) || n <= 0) n = errnoOf('EIO');
    handle.replyWrite(id, n);
  };
  try {
    handle = p.mountRw(o.mountpoint, [...o.files], [...o.writable], readCallback(onRead, answer), (id, file, pid, uid, data, view = '') => {
      let r: Promise<void> | void;
      try {
        r = onWrite(file, pid, uid, data, view);
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
