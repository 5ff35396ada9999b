// The manager's side of eci-fdholder (native/cmd/eci-fdholder.c): a process of its own session that
// keeps a copy of every container's seccomp notify fd, so that a manager killed with -9 does not take
// the containers' vetting with it. This manager hands each notify fd over as runc delivers it, drops a
// container's fds when it is deleted, and at start takes back what a previous manager left there.
// Fail closed: without a holder everything works as before (a dead manager means ENOSYS). Starting
// the holder and its wire rules are native/fd-holder.ts.
import type { Logger } from 'pino';
import { holderTag, parseHolderReply } from '../native/fd-holder.ts';

export interface FdHolderConnection {
  readonly fd: number;
  call(request: string, passFd?: number): Answer;
  /** The round trip off the event loop, one at a time in call order (absent: call is used). */
  callAsync?(request: string, passFd?: number): Promise<Answer>;
  close(): void;
}

type Answer = { reply: string; taken: { tag: string; fd: number }[]; pending?: { tag: string; id: bigint }[] };

export interface FdHolderNative {
  /** Starts a holder on socket (detached, fire and forget). */
  launchFdHolder(socket: string, pidFile: string): void;
  connectFdHolder(path: string): FdHolderConnection;
  /** Closes an fd this process owns (taken fds nobody wants). */
  closeFd(fd: number): void;
  /** Where the seccomp watchers note the ids they receive (SEEN), if the native side does that. */
  setFdHolderNotes?(conn: FdHolderConnection | undefined): void;
}

/** What a new manager takes back: the fds, and the ids the previous one received, by container. */
export interface Taken {
  fds: Map<string, number[]>;
  /** Notifications received by a manager (maybe answered, maybe not): check each with ID_VALID. */
  seen: Map<string, bigint[]>;
}

export interface FdHolderOptions {
  socket: string;
  pidFile: string;
  native: FdHolderNative;
  log: Logger;
  /** How long to wait for a launched holder to answer (ms). */
  startTimeoutMs?: number;
}

export class FdHolder {
  private conn?: FdHolderConnection;
  /**
   * Connections the watcher threads send SEEN notes on. Never closed here: a watcher thread may be
   * sending on one at any moment and a closed fd number can be reused by another socket, so the
   * addon retires the previous one in place when setFdHolderNotes changes it.
   */
  private notes: FdHolderConnection[] = [];
  private reopening?: Promise<boolean>;

  constructor(private o: FdHolderOptions) {}

  get connected(): boolean {
    return this.conn !== undefined;
  }

  /** Connects to a running holder, or launches one and connects. false: no holder (logged). */
  async open(): Promise<boolean> {
    if (this.conn) return true;
    try {
      this.connected_(this.o.native.connectFdHolder(this.o.socket));
      return true;
    } catch { /* none running: launch one */ }
    try {
      this.o.native.launchFdHolder(this.o.socket, this.o.pidFile);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'cannot start the fd-holder; vetting will not survive a manager restart');
      return false;
    }
    const end = Date.now() + (this.o.startTimeoutMs ?? 3000);
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
      try {
        this.connected_(this.o.native.connectFdHolder(this.o.socket));
        return true;
      } catch { /* not listening yet */ }
    }
    this.o.log.warn({ socket: this.o.socket }, 'the fd-holder did not come up; vetting will not survive a manager restart');
    return false;
  }

  private connected_(conn: FdHolderConnection): void {
    this.conn = conn;
    if (!this.o.native.setFdHolderNotes) return;
    try {
      const notes = this.o.native.connectFdHolder(this.o.socket);
      this.notes.push(notes);
      this.o.native.setFdHolderNotes(notes);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'no notes connection to the fd-holder: a call caught by a crash may wait until signalled');
    }
  }

  /** The holder's pid and how many fds it holds (PING), or undefined without a holder. */
  ping(): { pid: number; held: number } | undefined {
    const r = this.request('PING');
    if (!r) return undefined;
    const [pid, held] = parseHolderReply(r.reply);
    return { pid, held };
  }

  /** Hands a copy of a container's notify fd to the holder (the caller keeps its own). */
  put(container: string, fd: number): boolean {
    return this.accepted(container, this.request(`PUT ${holderTag(container)}`, fd));
  }

  /** Whether the holder took the fd (a refusal is logged, not thrown). */
  private accepted(container: string, r: { reply: string } | undefined): boolean {
    if (!r) return false;
    try {
      parseHolderReply(r.reply);
      return true;
    } catch (e) {
      this.o.log.warn({ container, err: (e as Error).message }, 'fd-holder refused a notify fd');
      return false;
    }
  }

  /**
   * put, with the round trip off the event loop (per create under load it blocked ~8 ms): resolves
   * once the holder has the copy (true) or did not take it (false, logged). The fd is duplicated at
   * the call, so the caller may close its own meanwhile. Queued behind earlier hold/release calls.
   */
  async hold(container: string, fd: number): Promise<boolean> {
    return this.accepted(container, await this.requestAsync(`PUT ${holderTag(container)}`, fd));
  }

  /** The container is gone: the holder closes its copies. */
  drop(container: string): void {
    this.request(`DROP ${holderTag(container)}`);
  }

  /** drop off the event loop, queued after the container's hold (so it cannot overtake it). */
  async release(container: string): Promise<void> {
    await this.requestAsync(`DROP ${holderTag(container)}`);
  }

  /**
   * Every fd the holder keeps, as copies now owned by this process (the holder keeps its own), by
   * container id, and the notification ids noted on them. Only seccomp notify fds come back (the
   * addon closes anything else).
   */
  take(): Taken {
    const out: Taken = { fds: new Map(), seen: new Map() };
    const r = this.request('TAKE');
    for (const t of r?.taken ?? []) out.fds.set(t.tag, [...(out.fds.get(t.tag) ?? []), t.fd]);
    for (const p of r?.pending ?? []) out.seen.set(p.tag, [...(out.seen.get(p.tag) ?? []), p.id]);
    return out;
  }

  /** Stops the holder: every copy it keeps is closed (explicit shutdown). */
  quit(): void {
    this.request('QUIT');
    this.close();
  }

  /** Closes this manager's connection; the holder keeps its fds (and exits once it holds none). */
  close(): void {
    this.conn?.close();
    this.conn = undefined;
    this.o.native.setFdHolderNotes?.(undefined);
  }

  /**
   * A holder that went away while we run (killed, crashed): connect to (or start) a new one and put
   * `live()` fds there again, so a later manager restart still finds them. One attempt at a time.
   */
  recover(live: () => { container: string; fd: number }[]): Promise<boolean> {
    this.reopening ??= this.open().then(async (ok) => {
      // Queued like any hold: a create's own hold may already be under way on the new connection.
      if (ok) await Promise.all(live().map((l) => this.hold(l.container, l.fd)));
      return ok;
    }).finally(() => { this.reopening = undefined; });
    return this.reopening;
  }

  private async requestAsync(req: string, passFd?: number): Promise<Answer | undefined> {
    const conn = this.conn;
    if (!conn) return undefined;
    if (!conn.callAsync) return this.request(req, passFd);
    try {
      return await conn.callAsync(req, passFd);
    } catch (e) {
      if ((e as { syscall?: string }).syscall === 'fcntl') { // the fd to pass could not be copied: the connection is fine
        this.o.log.warn({ request: req.split(' ')[0], err: (e as Error).message }, 'cannot copy the fd for the fd-holder');
        return undefined;
      }
      this.o.log.warn({ request: req.split(' ')[0], err: (e as Error).message }, 'fd-holder connection lost');
      if (this.conn === conn) this.close(); // not a newer connection opened meanwhile
      return undefined;
    }
  }

  private request(req: string, passFd?: number): Answer | undefined {
    if (!this.conn) return undefined;
    try {
      return this.conn.call(req, passFd);
    } catch (e) {
      // Requests off the event loop are under way on this connection: it is fine, this one just cannot cut in.
      if ((e as { code?: string }).code === 'EBUSY') {
        this.o.log.warn({ request: req.split(' ')[0] }, 'fd-holder busy with queued requests; not sent');
        return undefined;
      }
      this.o.log.warn({ request: req.split(' ')[0], err: (e as Error).message }, 'fd-holder connection lost');
      this.close();
      return undefined;
    }
  }
}
