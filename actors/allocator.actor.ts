// Runs the allocator machine against the world: KV for persistence (compare-and-set create),
// NATS request/reply for callers, JetStream events for every allocation and release.
import { createActor, type Actor } from 'xstate';
import type { NatsConnection, Msg } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { allocatorMachine, type AllocatorConfig } from '../statecharts/allocator.machine.ts';
import type { AllocationResult, IdRange } from '../statecharts/events.ts';
import { subjects } from '../bus/subjects.ts';

export interface RangeRecord { owner: string; index: number; uid: IdRange; gid: IdRange; ts: string }

export const rangeKey = (index: number) => `range.${index}`;

export interface AllocatorDeps {
  nc: NatsConnection;
  kv: KV;
  publish(subject: string, type: string, data: unknown): Promise<void>;
  log: Logger;
}

export class AllocatorActor {
  readonly actor: Actor<typeof allocatorMachine>;
  private waiters = new Map<string, ((r: AllocationResult) => void)[]>();
  private subs: { unsubscribe(): void }[] = [];
  /** KV writes run one at a time, in the order the machine asked: a release always lands before
   * a later allocation of the same index tries its compare-and-set. */
  private kvChain: Promise<void> = Promise.resolve();

  constructor(readonly config: AllocatorConfig, private deps: AllocatorDeps) {
    const machine = allocatorMachine.provide({
      actions: {
        persistRange: (_, p) => this.enqueue(() => this.persist(p.owner, p.index, p.uid, p.gid)),
        releaseRange: (_, p) => this.enqueue(() => this.release(p.owner, p.index, p.uid, p.gid)),
        respond: (_, r) => {
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
    for await (const key of await this.deps.kv.keys('range.>')) {
      const e = await this.deps.kv.get(key);
      if (!e || e.operation !== 'PUT') continue;
      const r = e.json<RangeRecord>();
      if (r.index < this.config.count) held[r.index] = r.owner;
    }
    this.actor.send({ type: 'restore', held });
    const serve = (subject: string, f: (m: Msg) => Promise<unknown>) => {
      this.subs.push(this.deps.nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) return;
          f(m).then((r) => m.respond(JSON.stringify(r)), (e) => m.respond(JSON.stringify({ ok: false, code: (e as { code?: string }).code ?? 'EINTERNAL', reason: (e as Error).message ?? String(e) })));
        },
      }));
    };
    serve(subjects.allocatorAllocate, async (m) => this.allocate(ownerOf(m)));
    serve(subjects.allocatorFree, async (m) => { this.free(ownerOf(m)); return { ok: true }; });
    serve(subjects.allocatorList, async () => this.held());
  }

  allocate(owner: string): Promise<AllocationResult> {
    return new Promise((resolve) => {
      const list = this.waiters.get(owner) ?? [];
      list.push(resolve);
      this.waiters.set(owner, list);
      this.actor.send({ type: 'allocate', owner });
    });
  }

  free(owner: string): void {
    this.actor.send({ type: 'free', owner });
  }

  held(): Record<number, string> {
    return { ...this.actor.getSnapshot().context.held };
  }

  /** Resolves when every KV write asked for so far has landed. */
  settled(): Promise<void> {
    return this.kvChain;
  }

  private enqueue(f: () => Promise<void>): void {
    this.kvChain = this.kvChain.then(f, f);
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.actor.stop();
  }

  private async persist(owner: string, index: number, uid: IdRange, gid: IdRange): Promise<void> {
    const rec: RangeRecord = { owner, index, uid, gid, ts: new Date().toISOString() };
    try {
      await this.deps.kv.create(rangeKey(index), JSON.stringify(rec));
    } catch (e) {
      // create() is compare-and-set: it fails if the key holds a value. Find out who holds it.
      const cur = await this.deps.kv.get(rangeKey(index)).catch(() => null);
      if (cur && cur.operation === 'PUT') {
        this.actor.send({ type: 'persist.conflict', owner, index, holder: cur.json<RangeRecord>().owner });
      } else {
        this.actor.send({ type: 'persist.failed', owner, index, reason: `cannot record the range: ${(e as Error).message}` });
      }
      return;
    }
    this.actor.send({ type: 'persisted', owner, index });
    await this.deps.publish(subjects.allocatorEvent('allocated'), 'allocator.allocated', { container: owner, index, uid, gid });
  }

  private async release(owner: string, index: number, uid: IdRange, gid: IdRange): Promise<void> {
    try {
      await this.deps.kv.delete(rangeKey(index));
      await this.deps.publish(subjects.allocatorEvent('freed'), 'allocator.freed', { container: owner, index, uid, gid });
    } catch (e) {
      this.deps.log.error({ err: e, owner, index }, 'cannot release range in KV');
    }
  }
}

/** The owner named by a request; anything else is a malformed request (answered as an error). */
function ownerOf(m: Msg): string {
  let owner: unknown;
  try { owner = (m.json() as { owner?: unknown } | null)?.owner; } catch { owner = undefined; }
  if (typeof owner !== 'string' || owner === '') throw Object.assign(new Error('malformed request: expected {"owner": "<container id>"}'), { code: 'EBADREQ' });
  return owner;
}
