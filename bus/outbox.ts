// A small durable outbox for events: every event is written to a file under the state dir before it
// is published, and the file is removed once JetStream acknowledged it. While the bus is down the
// files pile up; on reconnect (or at the next start, after a crash) they are published again, in
// ulid order, with the same ulid as JetStream message id, so anything the server already stored
// is dropped as a duplicate. One flusher publishes the queue in order, a window of events at a time
// on one connection (the server stores them in that order; a failed window is sent again from its
// first event, and what was stored already is a duplicate), so each subject keeps its order.
// A batch (addMany: e.g. the audit events of a burst of vetted calls) is one file of JSON lines,
// named by its first id, removed once all of its events are acknowledged.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

export interface OutboxEntry { subject: string; id: string; payload: string }

/** An outbox file and how many of its events still wait for an acknowledgement. */
interface KeptFile { path: string; left: number }

interface Pending extends OutboxEntry {
  file?: KeptFile;
  settle: () => void;
}

export type OutboxSend = (e: OutboxEntry) => Promise<void>;

const FILE = /^[0-9A-HJKMNP-TV-Z]{26}\.json$/;
const RETRY_MS = 250;
/** Events published before waiting for their acknowledgements. */
const WINDOW = 64;

export class Outbox {
  private queue: Pending[] = [];
  /** Added this event-loop turn, written as one file at its end (writeStaged). */
  private staged: (OutboxEntry & { settle: () => void })[] = [];
  private staging?: NodeJS.Immediate;
  private flushing?: Promise<void>;
  private wake?: () => void;
  private closed = false;
  /** Removals of acknowledged files under way (close waits for them). */
  private removing = new Set<Promise<void>>();
  /** False once a publish failed, until one succeeds again. */
  private up = true;

  constructor(readonly dir: string, private send: OutboxSend, private log: Pick<Logger, 'warn' | 'error' | 'info'>) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Events left by an earlier run (crash or outage), queued first in ulid order. */
  load(): number {
    const files = readdirSync(this.dir).filter((f) => FILE.test(f)).sort();
    for (const f of files) {
      const path = join(this.dir, f);
      const kept: OutboxEntry[] = [];
      try {
        for (const line of readFileSync(path, 'utf8').split('\n')) {
          if (!line) continue;
          const e = JSON.parse(line) as OutboxEntry;
          if (typeof e.subject !== 'string' || typeof e.payload !== 'string' || typeof e.id !== 'string' || (!kept.length && e.id !== f.slice(0, 26))) throw new Error('bad entry');
          kept.push({ subject: e.subject, id: e.id, payload: e.payload });
        }
      } catch (err) {
        // A torn write (disk full, crash mid-write) never reached the bus: nothing to keep of it.
        this.log.warn({ file: path, err: (err as Error).message, kept: kept.length }, 'dropping an unreadable outbox entry');
      }
      if (!kept.length) {
        rmSync(path, { force: true });
        continue;
      }
      const file: KeptFile = { path, left: kept.length };
      for (const e of kept) this.queue.push({ ...e, file, settle: () => {} });
    }
    if (files.length) this.kick();
    return this.queue.length;
  }

  /**
   * Queues one event. Resolves once it is acknowledged, or, when the bus is down, once it is kept
   * (on disk if possible): callers never wait for an outage to end.
   */
  add(e: OutboxEntry): Promise<void> {
    return this.addMany([e]);
  }

  /**
   * Queues events, kept together in one file: resolves as add does, for all of them. The adds of one
   * event-loop turn (e.g. the transitions of many containers created at once) share one file, written
   * before any of them is sent: one open+write and one unlink instead of one per add.
   */
  addMany(es: OutboxEntry[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('outbox closed'));
    if (!es.length) return Promise.resolve();
    const settled = es.map((e) => new Promise<void>((settle) => this.staged.push({ ...e, settle })));
    this.staging ??= setImmediate(() => this.writeStaged());
    return Promise.all(settled).then(() => {});
  }

  /** Writes the events added this turn as one file and queues them for the flusher. */
  private writeStaged(): void {
    if (this.staging) clearImmediate(this.staging);
    this.staging = undefined;
    const es = this.staged;
    this.staged = [];
    if (!es.length) return;
    let file: KeptFile | undefined = { path: join(this.dir, `${es[0]!.id}.json`), left: es.length };
    try {
      writeFileSync(file.path, es.map((e) => JSON.stringify({ subject: e.subject, id: e.id, payload: e.payload })).join('\n'), { mode: 0o600 });
    } catch (err) {
      // Disk full or read-only: publish from memory only (lost if the manager dies before the ack).
      rmSync(file.path, { force: true });
      this.log.error({ ids: es.map((e) => e.id), subject: es[0]!.subject, err: (err as Error).message }, 'cannot write the event outbox; event kept in memory only');
      file = undefined;
    }
    for (const e of es) {
      this.queue.push({ ...e, file });
      if (!this.up) e.settle();
    }
    this.kick();
  }

  /** Events not yet acknowledged, or acknowledged with their file still being removed. */
  pending(): number {
    return this.staged.length + this.queue.length + this.removing.size; // an acknowledged file being removed is not done yet
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
    this.writeStaged(); // what was added is on disk before the outbox waits or gives up
    const end = Date.now() + timeoutMs;
    while (this.queue.length && this.up && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    this.closed = true;
    this.wake?.();
    await this.flushing;
    await Promise.all(this.removing); // a clean stop leaves no acknowledged event to send again
    for (const p of this.queue) p.settle();
  }

  /**
   * Removes an acknowledged file off the event loop (a sync unlink per event held up every other call
   * under load); its last event settles once it is gone. A file whose removal is lost to a crash is
   * only sent again: a duplicate, dropped.
   */
  private remove(path: string, settle: () => void): void {
    const r: Promise<void> = unlink(path).catch(() => {}).finally(() => { this.removing.delete(r); settle(); });
    this.removing.add(r);
  }

  private async flush(): Promise<void> {
    while (this.queue.length && !this.closed) {
      // While the bus is down, one event at a time probes it; when up, a window in flight at once.
      const window = this.queue.slice(0, this.up ? WINDOW : 1);
      const sent = await Promise.allSettled(window.map((p) => this.send(p)));
      // Acknowledged up to the first failure; from there on everything goes again (a duplicate is dropped).
      let ok = 0;
      while (ok < sent.length && sent[ok]!.status === 'fulfilled') ok++;
      for (const p of this.queue.splice(0, ok)) {
        if (p.file && --p.file.left === 0) this.remove(p.file.path, p.settle);
        else p.settle();
      }
      if (ok && !this.up) {
        this.up = true;
        this.log.info({ pending: this.queue.length }, 'event bus back; flushing the outbox');
      }
      if (ok < sent.length) {
        const err = (sent[ok] as PromiseRejectedResult).reason as Error;
        if (this.up) this.log.warn({ err: err?.message, pending: this.queue.length }, 'event bus unavailable; keeping events in the outbox');
        this.up = false;
        for (const p of this.queue) p.settle(); // kept: nobody waits on the outage
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, RETRY_MS); });
      }
    }
  }
}
