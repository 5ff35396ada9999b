// Runs the allocator machine against the world: KV for persistence (compare-and-set create, several
// indexes in flight at once),
// direct calls from the manager's containers, NATS request/reply for observers and tools, and
// JetStream events for every allocation and release.
import { createActor, type Actor } from 'xstate';
import type { KV } from '@nats-io/kv';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { allocatorMachine, type AllocatorConfig } from '../statecharts/allocator.machine.ts';
import type { AllocationResult, IdRange } from '../statecharts/events.ts';
import { RANGES_BUCKET, subjects } from '../bus/subjects.ts';
import { rangeKeys } from '../bus/keys.ts';
import type { Publish } from '../bus/events.ts';
import { retryUntilDone } from '../bus/retry.ts';
import { BadRequestError, serve, type ServeConnection } from '../bus/serve.ts';

export interface RangeRecord { owner: string; index: number; uid: IdRange; gid: IdRange; ts: string }

export interface AllocatorDeps {
  /** Where the endpoints are served (for observers and tools; the manager calls allocate() directly). */
  nc: ServeConnection;
  kv: KV;
  publish: Publish;
  log: Logger;
  /**
   * Removes a released key without leaving a delete marker, so the next allocation of its index is
   * one compare-and-set write (after a marker, nats.js create() needs three round trips: put, get,
   * put). Default: kv.delete.
   */
  forget?: (key: string) => Promise<void>;
}

/** `forget` for the manager: purges the key's subject from the bucket's stream (no marker left). */
export function purgeRangeKey(jsm: JetStreamManager): (key: string) => Promise<void> {
  return async (key) => {
    await jsm.streams.purge(`KV_${RANGES_BUCKET}`, { filter: `$KV.${RANGES_BUCKET}.${key}` });
  };
}

export class AllocatorActor {
  readonly actor: Actor<typeof allocatorMachine>;
  private waiters = new Map<string, ((r: AllocationResult) => void)[]>();
  /** Owners waiting for the machine's decision (allocateEarly), answered before the write lands. */
  private early = new Map<string, (r: AllocationResult) => void>();
  private subs: { unsubscribe(): void }[] = [];
  private stopped = false;
  /** KV writes to one index run in the order the machine asked (a release always lands before a
   * later allocation of the same index tries its compare-and-set); writes to different indexes run
   * concurrently. An index's chain is dropped when it runs dry. */
  private chains = new Map<number, Promise<void>>();

  constructor(readonly config: AllocatorConfig, private deps: AllocatorDeps) {
    const machine = allocatorMachine.provide({
      actions: {
        persistRange: (_, p) => {
          this.decided({ ok: true, owner: p.owner, index: p.index, uid: p.uid, gid: p.gid });
          this.enqueue(p.index, () => this.persist(p.owner, p.index, p.uid, p.gid));
        },
        releaseRange: (_, p) => this.enqueue(p.index, () => this.release(p.owner, p.index, p.uid, p.gid)),
        respond: (_, r) => {
          this.decided(r);
          const w = this.waiters.get(r.owner) ?? [];
          this.waiters.delete(r.owner);
          for (const f of w) f(r);
        },
      },
    });
    this.actor = createActor(machine, { input: config, systemId: 'allocator' });
  }

  /** Loads held ranges from KV, then serves requests on the bus. */
  async start(): Promise<void> {
    this.actor.start();
    const held: Record<number, string> = {};
    for await (const key of await this.deps.kv.keys(rangeKeys.all)) {
      const e = await this.deps.kv.get(key);
      if (!e || e.operation !== 'PUT') continue;
      const r = e.json<RangeRecord>();
      if (r.index < this.config.count) held[r.index] = r.owner;
    }
    this.actor.send({ type: 'restore', held });
    const nc = this.deps.nc;
    this.subs.push(
      serve(nc, { subject: subjects.allocatorAllocate, handle: (r: unknown) => this.allocate(ownerOf(r)) }),
      serve(nc, { subject: subjects.allocatorFree, handle: (r: unknown) => { this.free(ownerOf(r)); return { ok: true }; } }),
      serve(nc, { subject: subjects.allocatorList, handle: () => this.held() }),
    );
  }

  allocate(owner: string): Promise<AllocationResult> {
    return new Promise((resolve) => {
      const list = this.waiters.get(owner) ?? [];
      list.push(resolve);
      this.waiters.set(owner, list);
      this.actor.send({ type: 'allocate', owner });
    });
  }

  /**
   * Like allocate, but answers as soon as the machine has picked the index (its compare-and-set write
   * is then in flight, and no other owner can be given that index meanwhile): `decided`. `recorded` is
   * allocate's answer, once the write landed: the same range, or (a conflict with a foreign holder, a
   * failed write) another answer. Whoever uses a decided range before it is recorded must not let
   * anything run with it until `recorded` confirms it.
   */
  allocateEarly(owner: string): { decided: Promise<AllocationResult>; recorded: Promise<AllocationResult> } {
    let resolveDecided!: (r: AllocationResult) => void;
    const decided = new Promise<AllocationResult>((r) => (resolveDecided = r));
    if (!this.early.has(owner)) this.early.set(owner, resolveDecided); // a second one gets the recorded answer
    const recorded = this.allocate(owner);
    void recorded.then(resolveDecided);
    return { decided, recorded };
  }

  private decided(r: AllocationResult): void {
    const f = this.early.get(r.owner);
    if (!f) return;
    this.early.delete(r.owner);
    f(r);
  }

  free(owner: string): void {
    this.actor.send({ type: 'free', owner });
  }

  held(): Record<number, string> {
    return { ...this.actor.getSnapshot().context.held };
  }

  /** Resolves when every KV write asked for so far has landed. */
  async settled(): Promise<void> {
    await Promise.all(this.chains.values());
  }

  /** Writes in flight or waiting, over all indexes (for the timings in the debug log). */
  inFlight(): number {
    return this.chains.size;
  }

  private enqueue(index: number, f: () => Promise<void>): void {
    const next = (this.chains.get(index) ?? Promise.resolve()).then(f, f);
    this.chains.set(index, next);
    const drop = () => { if (this.chains.get(index) === next) this.chains.delete(index); };
    next.then(drop, drop);
  }

  /** Pending KV writes give up after their next failure (a stop must not wait for an outage to end). */
  stopRetrying(): void {
    this.stopped = true;
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.subs) s.unsubscribe();
    this.actor.stop();
  }

  private async persist(owner: string, index: number, uid: IdRange, gid: IdRange): Promise<void> {
    const rec: RangeRecord = { owner, index, uid, gid, ts: new Date().toISOString() };
    const t = performance.now();
    try {
      await this.deps.kv.create(rangeKeys.key(index), JSON.stringify(rec));
      this.deps.log.debug({ owner, index, ms: +(performance.now() - t).toFixed(2) }, 'range written');
    } catch (e) {
      // create() is compare-and-set: it fails if the key holds a value. Find out who holds it.
      const cur = await this.deps.kv.get(rangeKeys.key(index)).catch(() => null);
      if (cur && cur.operation === 'PUT') {
        this.actor.send({ type: 'persist.conflict', owner, index, holder: cur.json<RangeRecord>().owner });
      } else {
        this.actor.send({ type: 'persist.failed', owner, index, reason: `cannot record the range: ${(e as Error).message}` });
      }
      return;
    }
    this.actor.send({ type: 'persisted', owner, index });
    // Not awaited: the event's place in the stream is fixed when it is queued (the manager's outbox),
    // and waiting for its ack here would hold every later allocation behind the whole event queue.
    void this.deps.publish(subjects.allocatorEvent('allocated'), 'allocator.allocated', { container: owner, index, uid, gid });
  }

  private async release(owner: string, index: number, uid: IdRange, gid: IdRange): Promise<void> {
    try {
      // A release must land before the index is handed out again (the index's chain): retry through an outage.
      const key = rangeKeys.key(index);
      await retryUntilDone(() => (this.deps.forget ? this.deps.forget(key) : this.deps.kv.delete(key)), {
        cancelled: () => this.stopped,
        onFirstFailure: (e) => this.deps.log.warn({ owner, index, err: (e as Error).message }, 'range release not recorded yet; retrying'),
      });
      void this.deps.publish(subjects.allocatorEvent('freed'), 'allocator.freed', { container: owner, index, uid, gid });
    } catch (e) {
      this.deps.log.error({ err: e, owner, index }, 'cannot release range in KV');
    }
  }
}

/** The owner named by a request; anything else is a malformed request (answered as an error). */
function ownerOf(req: unknown): string {
  const owner = (req as { owner?: unknown } | null | undefined)?.owner;
  if (typeof owner !== 'string' || owner === '') throw new BadRequestError('expected {"owner": "<container id>"}');
  return owner;
}
