// The fd-holder (cmd/eci-fdholder.c): a process of its own session that keeps notify fds across
// manager restarts. Here: starting it, talking to it (src/seccomp.cc holderConnect/holderCall), and
// its request/answer rules. What to keep and when is actors/fd-holder.ts.
import { spawn } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { callAddon, loadAddon, nativeFile } from './addon.ts';
import { NativeError, errnoOf, usageError } from './errors.ts';
import type { FdHolderAnswer } from './addon.ts';

export type { FdHolderAnswer } from './addon.ts';

/** One connection to a running eci-fdholder (2 s timeouts). */
export interface FdHolderConnection {
  readonly fd: number;
  /**
   * One request ("PUT <tag>" with passFd, "DROP <tag>", "TAKE", "PING", "QUIT"), blocking the event
   * loop for its round trip; throws NativeError (EBUSY while callAsync requests are under way).
   */
  call(request: string, passFd?: number): FdHolderAnswer;
  /**
   * The same request with the round trip on libuv's thread pool; requests run one at a time in call
   * order. passFd is duplicated now, so the caller may close its own at once. Rejects with NativeError.
   */
  callAsync(request: string, passFd?: number): Promise<FdHolderAnswer>;
  /** Closes the connection, once the requests under way are answered. */
  close(): void;
}

export function fdHolderPath(): string {
  return nativeFile('./bin/eci-fdholder');
}

/**
 * Starts eci-fdholder serving `socket` (its pid in pidFile), detached: setsid, so it is in a session
 * (and process group) of its own and a kill of the manager's group leaves it; stdio ignored, so it
 * holds nothing of ours. Fire and forget: the caller connects to see it is up.
 */
export function launchFdHolder(socket: string, pidFile: string): void {
  const child = spawn(fdHolderPath(), [socket, pidFile], { detached: true, stdio: 'ignore' });
  child.on('error', () => {});
  child.unref();
}

/** A container id is a valid tag as is (1-128 of [A-Za-z0-9_-]); anything else is refused here too. */
export function holderTag(container: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(container)) throw new Error(`fd-holder: bad container id ${JSON.stringify(container)}`);
  return container;
}

/** "OK <n>" -> n; "OK <pid> <held>" -> [pid, held]; "ERR why" -> throws with why. */
export function parseHolderReply(reply: string): number[] {
  if (reply === 'OK') return [];
  const m = /^OK((?: \d+)+)$/.exec(reply);
  if (m) return m[1].trim().split(' ').map(Number);
  if (reply.startsWith('ERR ')) throw new Error(`fd-holder: ${reply.slice(4)}`);
  throw new Error(`fd-holder: unexpected answer ${JSON.stringify(reply.slice(0, 80))}`);
}
/** Connects to the fd-holder at `path` (AF_UNIX SOCK_SEQPACKET); throws NativeError (ENOENT, ECONNREFUSED...). */
export function connectFdHolder(path: string): FdHolderConnection {
  if (!isAbsolute(path)) throw usageError(`fd-holder socket must be an absolute path, got ${path}`);
  const s = loadAddon().seccomp;
  let fd: number;
  try {
    fd = s.holderConnect(path);
  } catch (err) {
    throw NativeError.from(err);
  }
  let open = true;
  let queued = 0; // callAsync requests not yet answered
  let tail: Promise<unknown> = Promise.resolve(); // the last of them: the next one waits for it
  const closed = (syscall: string) => new NativeError({ code: 'EBADF', errno: errnoOf('EBADF'), syscall, message: 'EBADF: fd-holder connection is closed' });
  return {
    fd,
    call(request, passFd) {
      if (!open) throw closed('sendmsg');
      // Answers on one connection come in order: a request must not cut in between another's.
      if (queued) throw new NativeError({ code: 'EBUSY', errno: errnoOf('EBUSY'), syscall: 'sendmsg', message: 'EBUSY: fd-holder requests under way on this connection' });
      try {
        return s.holderCall(fd, request, passFd);
      } catch (err) {
        throw NativeError.from(err);
      }
    },
    callAsync(request, passFd) {
      if (!open) return Promise.reject(closed('sendmsg'));
      let copy: number | undefined;
      try {
        if (passFd !== undefined) copy = s.dupFd(passFd);
      } catch (err) {
        return Promise.reject(NativeError.from(err));
      }
      queued++;
      const run = async (): Promise<FdHolderAnswer> => {
        try {
          if (!open) throw closed('sendmsg');
          return await s.holderCallAsync(fd, request, copy);
        } catch (err) {
          throw NativeError.from(err);
        } finally {
          if (copy !== undefined) s.closeFd(copy);
          queued--;
        }
      };
      const p = tail.then(run, run);
      tail = p.catch(() => {});
      return p;
    },
    close() {
      if (!open) return;
      open = false;
      // A request on a thread-pool thread still uses fd: close it after (its number is not reused meanwhile).
      void tail.then(() => { try { s.closeFd(fd); } catch { /* already gone */ } });
    },
  };
}

/** Closes an fd this process owns (e.g. a notify fd taken from the fd-holder that nobody adopts). */
export function closeFd(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw usageError(`closeFd needs an fd, got ${fd}`);
  callAddon((a) => a.seccomp.closeFd(fd));
}

/**
 * Where the seccomp watchers note each notification id they receive ("SEEN <tag> <id>", fire and
 * forget): a connection of its own to the fd-holder, or undefined to stop. The caller keeps it open.
 */
export function setFdHolderNotes(conn: FdHolderConnection | undefined): void {
  loadAddon().seccomp.holderNotes(conn ? conn.fd : -1);
}
