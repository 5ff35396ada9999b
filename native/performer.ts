// Performers: `eci-helper perform` (cmd/perform.h), one per seccomp notify fd, forking once per vetted
// mount/umount, so that a vetted call costs no spawn. Used by seccomp.ts; a performer ends with its fd.
import { existsSync } from 'node:fs';
import { parseHelperOutput } from './errors.ts';
import { FramedHelper, doneFailure } from './framed-helper.ts';
import { helperPath } from './helpers.ts';
import { loadAddon } from './addon.ts';
import { FastFallbackError, type AsOutcome } from './seccomp-agent.ts';

/** The notify fd's number in the performer (the args say --notif-fd 4). */
export const PERFORM_NOTIFY_FD = 4;

interface PerformRun { resolve: (o: AsOutcome) => void; reject: (e: unknown) => void; fallback: () => void; guard: NodeJS.Timeout }

/** perform.h's request flag: the performer answers the notification itself. */
const PERFORM_ANSWER = 1;
/** An 'A' frame's fields between the stdout length and stdout: u64 answered at, i32 errno answered, i32 send errno. */
const ANSWER_FIELDS = 16;
/** Run ids of the fast path (written by the native watcher thread to fd 5) have bit 31 set. */
export const FAST_ID_BIT = 0x80000000;
const isFast = (id: number) => (id & FAST_ID_BIT) !== 0;
/** Outcomes of fast-path runs that came before their notification was posted, kept this many at most. */
const EARLY_MAX = 1024;

export class Performer extends FramedHelper<PerformRun> {
  /** Requests written before the performer said it is ready: if it dies first, none of them ran. */
  private unconfirmed: Buffer[] | null = [];

  /** The manager's end of the fast path's socket (fd 5 in the performer), until the watcher takes it. */
  private nativeEnd?: number;
  /** Fast-path outcomes that arrived before anyone asked for them (the post and the frame race). */
  private early = new Map<number, { kind: string; f: Buffer }>();

  /** `fast`: with the fast path's socket (its fd 5). */
  constructor(helper: string, notifyFd: number, private readonly onDead: () => void, fast = false) {
    const pair = fast ? fastSocketPair() : undefined;
    try {
      super(helper, 'perform', pair ? [notifyFd, pair[1]] : [notifyFd]);
    } finally {
      if (pair) closeQuietly(pair[1]); // the child has its copy
    }
    this.nativeEnd = pair?.[0];
  }

  /** The fast path's end of the line (once): the watcher thread owns it from then on. */
  takeNativeEnd(): number | undefined {
    const fd = this.dead ? undefined : this.nativeEnd;
    this.nativeEnd = undefined;
    return fd;
  }

  /**
   * How fast-path run `id` went: its 'A' frame, as run() resolves or rejects; a FastFallbackError when
   * the performer ran nothing (the caller still waits); a failure when it died (it may have run it).
   */
  awaitNative(id: number): Promise<AsOutcome> {
    const early = this.early.get(id);
    if (this.dead && !early) return Promise.reject(parseHelperOutput('', { code: null, signal: 'SIGKILL', stderr: 'eci-helper perform died before reporting a fast-path run' }));
    const p = new Promise<AsOutcome>((resolve, reject) => {
      this.track(id, (guard) => ({ resolve, reject, fallback: () => reject(new FastFallbackError('the performer ran nothing (no spare)')), guard }));
    });
    if (early) {
      this.early.delete(id);
      this.onFrame(id, early.kind, early.f);
    }
    return p;
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

  /** Set by close() before the performer said it is ready: it ends once the requests queued so far are written. */
  private closing = false;

  close(): void {
    if (this.nativeEnd !== undefined) closeQuietly(this.nativeEnd);
    this.nativeEnd = undefined;
    // A request queued for a performer not ready yet is still run: writing it after the end would fail
    // it as if the performer had died mid-run (a call performed, or not, reported refused).
    if (this.unconfirmed) {
      this.closing = true;
      return;
    }
    this.sock.end(); // EOF: the performer exits once its current run is over
  }

  protected onFrame(id: number, kind: string, f: Buffer): boolean {
    if (isFast(id) && !this.runs.has(id) && (kind === 'A' || kind === 'D' || kind === 'F')) {
      if (this.early.size >= EARLY_MAX) this.early.delete(this.early.keys().next().value!);
      this.early.set(id, { kind, f: Buffer.from(f) });
      return true;
    }
    if (kind === 'R' && this.unconfirmed) {
      for (const q of this.unconfirmed) this.sock.write(q);
      this.unconfirmed = null;
      if (this.closing) this.sock.end();
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
    if (this.nativeEnd !== undefined) closeQuietly(this.nativeEnd);
    this.nativeEnd = undefined;
    this.onDead();
    const neverSent = this.unconfirmed !== null;
    for (const id of [...this.runs.keys()]) {
      const r = this.settle(id)!;
      // A fast-path request may have been taken by a spare before 'R' came: it failed (closed).
      if (neverSent && !isFast(id)) r.fallback();
      else r.reject(parseHelperOutput('', { code: null, signal: 'SIGKILL', stderr: 'eci-helper perform died during the run' }));
    }
  }
}

/** A SOCK_SEQPACKET pair for the fast path, or undefined (an addon without it: no fast path). */
function fastSocketPair(): [number, number] | undefined {
  try {
    return loadAddon().seccomp.socketPair();
  } catch {
    return undefined;
  }
}

function closeQuietly(fd: number): void {
  try {
    loadAddon().seccomp.closeFd(fd);
  } catch {
    /* already closed */
  }
}

/**
 * Performers by notify fd number, each with the listener it serves: an fd number is reused once its
 * listener closes, and that close is reported later (asynchronously), so a performer is only reused
 * for, and only closed by, the listener it was started for (else a late close of the old listener
 * would end the new one's performer mid-run, and the old performer holds the old notify fd).
 */
const performers = new Map<number, { p: Performer; owner: object | undefined }>();

/**
 * The performer of notify fd `fd` (for listener `owner`), started on first use, with the fast path's
 * socket when `fast`; undefined: run the call another way.
 */
export function performerFor(fd: number, owner?: object, fast = false): Performer | undefined {
  const e = performers.get(fd);
  if (e && e.owner === owner && !e.p.dead) return e.p;
  if (e && e.owner !== owner) {
    performers.delete(fd);
    e.p.close(); // a performer of a closed fd whose number came back: it holds the old fd
  }
  if (process.env.ECI_HELPER_SERVER === '0' || process.env.ECI_HELPER_PERFORMER === '0') return undefined;
  const helper = helperPath();
  if (!existsSync(helper)) return undefined;
  try {
    const np: Performer = new Performer(helper, fd, () => {
      if (performers.get(fd)?.p === np) performers.delete(fd);
    }, fast);
    performers.set(fd, { p: np, owner });
    return np;
  } catch {
    return undefined;
  }
}

/** Listener `owner`'s notify fd is closed: so is its performer (a later fd with the same number gets its own). */
export function closePerformer(fd: number, owner?: object): void {
  const e = performers.get(fd);
  if (!e || e.owner !== owner) return;
  performers.delete(fd);
  e.p.close();
}
