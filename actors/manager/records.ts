// The container records in KV `eci-containers` (what a restarted manager picks up) and the order of
// each container's bus writes: one chain per container, so its events and record writes land in
// the order of its transitions, while different containers write in parallel.
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { containerRecordKeys } from '../../bus/keys.ts';
import { retryUntilDone } from '../../bus/retry.ts';
import type { StoredRecord } from '../restore.ts';

export class ContainerRecords {
  private chains = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(private readonly kv: () => KV, private readonly log: Logger) {}

  /** Runs `f` after this container's earlier writes; a failure is logged, not thrown. */
  chain(id: string, f: () => Promise<unknown>): void {
    const next = (this.chains.get(id) ?? Promise.resolve()).then(f).then(() => {}, (e) => this.log.error({ err: e, id }, 'bus write failed'));
    this.chains.set(id, next);
    next.then(() => {
      if (this.chains.get(id) !== next) return;
      this.chains.delete(id);
      this.queued.delete(id); // nothing of it queued any more
    });
  }

  /** Queues the record write: retried through a bus outage unless `once` (then a failure is logged). */
  put(id: string, record: StoredRecord, o: { once?: boolean } = {}): void {
    const n = this.queueRecord(id, !o.once);
    this.chain(id, () => (this.superseded(id, n) ? Promise.resolve() : o.once ? this.kv().put(containerRecordKeys.key(id), JSON.stringify(record)) : this.write(id, record)));
  }

  /**
   * Queues a transition's event, then its record (a record that must land). The record is skipped
   * when a newer one that must land is queued behind it: KV keeps only the newest, which is
   * written anyway (a create's created, mapped and mounted come within a few ms). The events all go.
   */
  transition(id: string, publish: () => Promise<unknown>, record: StoredRecord): void {
    const n = this.queueRecord(id, true);
    this.chain(id, async () => {
      await publish();
      if (!this.superseded(id, n)) await this.write(id, record);
    });
  }

  /** Per container: the number of its last record write queued, and of its last one that must land. */
  private queued = new Map<string, { last: number; mustLand: number }>();

  private queueRecord(id: string, mustLand: boolean): number {
    const q = this.queued.get(id) ?? { last: 0, mustLand: 0 };
    q.last++;
    if (mustLand) q.mustLand = q.last;
    this.queued.set(id, q);
    return q.last;
  }

  /** Whether record write `n` has a newer one that must land queued behind it (a lost write would be retried by that one). */
  private superseded(id: string, n: number): boolean {
    return (this.queued.get(id)?.mustLand ?? 0) > n;
  }

  /** Queues the record's removal (the container is gone). */
  remove(id: string): void {
    this.chain(id, () => this.mustLand(id, () => this.kv().delete(containerRecordKeys.key(id))));
  }

  /** A record write that must land: retried through a bus outage (not past a stop). */
  write(id: string, record: StoredRecord): Promise<unknown> {
    return this.mustLand(id, () => this.kv().put(containerRecordKeys.key(id), JSON.stringify(record)));
  }

  /** Resolves when this container's writes so far have landed. */
  settledFor(id: string): Promise<void> | undefined {
    return this.chains.get(id);
  }

  /** Resolves when every container's writes so far have landed. */
  async settled(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }

  /** Writes still waiting for the bus give up at their next failure. */
  stop(): void {
    this.stopping = true;
  }

  private mustLand(id: string, f: () => Promise<unknown>): Promise<unknown> {
    return retryUntilDone(f, {
      cancelled: () => this.stopping,
      onFirstFailure: (e) => this.log.warn({ id, err: (e as Error).message }, 'container record not written yet; retrying until the bus is back'),
    });
  }
}
