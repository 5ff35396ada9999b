// A small durable outbox for events: every event is written to a file under the state dir before it
// is published, and the file is removed once JetStream acknowledged it. While the bus is down the
// files pile up; on reconnect (or at the next start, after a crash) they are published again, in
// ulid order, with the same ulid as JetStream message id, so anything the server already stored
// is dropped as a duplicate. One flusher publishes one event at a time: a retry can never overtake
// a later event, so each subject keeps its order.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

export interface OutboxEntry { subject: string; id: string; payload: string }

interface Pending extends OutboxEntry {
  file?: string;
  settle: () => void;
}

export type OutboxSend = (e: OutboxEntry) => Promise<void>;

const FILE = /^[0-9A-HJKMNP-TV-Z]{26}\.json$/;
const RETRY_MS = 250;

export class Outbox {
  private queue: Pending[] = [];
  private flushing?: Promise<void>;
  private wake?: () => void;
  private closed = false;
  /** False once a publish failed, until one succeeds again. */
  private up = true;

  constructor(readonly dir: string, private send: OutboxSend, private log: Pick<Logger, 'warn' | 'error' | 'info'>) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Events left by an earlier run (crash or outage), queued first in ulid order. */
  load(): number {
    const files = readdirSync(this.dir).filter((f) => FILE.test(f)).sort();
    for (const f of files) {
      const file = join(this.dir, f);
      try {
        const e = JSON.parse(readFileSync(file, 'utf8')) as OutboxEntry;
        if (typeof e.subject !== 'string' || typeof e.payload !== 'string' || e.id !== f.slice(0, 26)) throw new Error('bad entry');
        this.queue.push({ ...e, file, settle: () => {} });
      } catch (err) {
        // A torn write (disk full, crash mid-write) never reached the bus: nothing to keep.
        this.log.warn({ file, err: (err as Error).message }, 'dropping an unreadable outbox entry');
        rmSync(file, { force: true });
      }
    }
    if (files.length) this.kick();
    return this.queue.length;
  }

  /**
   * Queues one event. Resolves once it is acknowledged, or, when the bus is down, once it is kept
   * (on disk if possible): callers never wait for an outage to end.
   */
  add(e: OutboxEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('outbox closed'));
    let file: string | undefined = join(this.dir, `${e.id}.json`);
    try {
      writeFileSync(file, JSON.stringify(e), { mode: 0o600 });
    } catch (err) {
      // Disk full or read-only: publish from memory only (lost if the manager dies before the ack).
      rmSync(file, { force: true });
      this.log.error({ id: e.id, subject: e.subject, err: (err as Error).message }, 'cannot write the event outbox; event kept in memory only');
      file = undefined;
    }
    return new Promise<void>((settle) => {
      this.queue.push({ ...e, file, settle });
      if (!this.up) settle();
      this.kick();
    });
  }

  /** Events not yet acknowledged. */
  pending(): number {
    return this.queue.length;
  }

  /** The bus came back: retry now instead of at the next tick. */
  kick(): void {
    if (this.wake) { const w = this.wake; this.wake = undefined; w(); }
    if (!this.flushing && this.queue.length && !this.closed) {
      this.flushing = this.flush().finally(() => { this.flushing = undefined; if (this.queue.length && !this.closed) this.kick(); });
    }
  }

  /** Waits (bounded) for the queue to empty; what is left stays on disk for the next start. */
  async close(timeoutMs = 2000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.queue.length && this.up && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    this.closed = true;
    this.wake?.();
    await this.flushing;
    for (const p of this.queue) p.settle();
  }

  private async flush(): Promise<void> {
    while (this.queue.length && !this.closed) {
      const head = this.queue[0];
      try {
        await this.send(head);
      } catch (err) {
        if (this.up) this.log.warn({ err: (err as Error).message, pending: this.queue.length }, 'event bus unavailable; keeping events in the outbox');
        this.up = false;
        for (const p of this.queue) p.settle(); // kept: nobody waits on the outage
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, RETRY_MS); });
        continue;
      }
      this.queue.shift();
      if (head.file) rmSync(head.file, { force: true });
      if (!this.up) {
        this.up = true;
        this.log.info({ pending: this.queue.length }, 'event bus back; flushing the outbox');
      }
      head.settle();
    }
  }
}
