// Issue 18: allocation is a local decision. The manager's containers call the AllocatorActor in
// process (a connection that refuses every request shows no bus round trip is made); each decision
// is persisted to KV with compare-and-set before it is answered, and a restarted allocator reloads
// the held ranges, so no range is ever handed to a second owner. Writes to different indexes are in
// flight together; a release and a later allocation of the same index stay in order.
import { describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { AllocatorActor, type RangeRecord } from '../../actors/allocator.actor.ts';
import { rangeKeys } from '../../bus/keys.ts';
import type { AllocationResult } from '../../statecharts/events.ts';

const rangeKey = rangeKeys.key;

const CFG = { base: 100000, size: 65536, count: 128 };
const tick = () => new Promise((r) => setImmediate(r));

/** In-memory KV: `create` is compare-and-set and lands a tick later, like a JetStream write. */
function casKv() {
  const data = new Map<string, string>();
  let writes = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const kv = {
    async keys(filter?: string) {
      const p = filter?.replace(/>$/, '') ?? '';
      return (async function* () { yield* [...data.keys()].filter((k) => k.startsWith(p)); })();
    },
    async get(k: string) {
      const v = data.get(k);
      return v === undefined ? null : { operation: 'PUT', json: () => JSON.parse(v) };
    },
    async create(k: string, v: string) {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await tick();
      inFlight--;
      writes++;
      if (data.has(k)) throw new Error('wrong last sequence');
      data.set(k, v);
      return writes;
    },
    async delete(k: string) { await tick(); writes++; data.delete(k); },
  };
  return { kv: kv as unknown as KV, data, writes: () => writes, maxInFlight: () => maxInFlight };
}

/** A connection the allocator may serve on, but on which any request is a failure of the test. */
const noRequests = {
  subscribe: () => ({ unsubscribe() {} }),
  request: () => { throw new Error('the manager must not call itself over the bus'); },
} as unknown as NatsConnection;

const newAllocator = (kv: KV) => new AllocatorActor(CFG, { nc: noRequests, kv, publish: async () => {}, log: pino({ level: 'silent' }) });
const indexOf = (r: AllocationResult) => (r.ok ? r.index : -1);

describe('allocator, local path', () => {
  it('answers 100 concurrent allocations in process, each persisted, all distinct', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    const owners = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const rs = await Promise.all(owners.map((o) => a.allocate(o)));
    expect(rs.every((r) => r.ok)).toBe(true);
    expect(new Set(rs.map(indexOf)).size).toBe(100);
    // Answered only after the record landed: every answer is in the KV, under its owner.
    for (const r of rs) {
      const rec = JSON.parse(k.data.get(rangeKey(indexOf(r)))!) as RangeRecord;
      expect(rec.owner).toBe(r.owner);
    }
    expect(Object.keys(a.held())).toHaveLength(100);
    a.stop();
  });

  it('keeps writes to different indexes in flight together', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    const rs = await Promise.all(['c1', 'c2', 'c3'].map((o) => a.allocate(o)));
    expect(rs.map(indexOf)).toEqual([0, 1, 2]);
    expect(k.maxInFlight()).toBe(3);
    a.stop();
  });

  it('an owner that asks twice gets the same range', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    const [x, y] = await Promise.all([a.allocate('c1'), a.allocate('c1')]);
    expect(x).toEqual(y);
    expect(indexOf(await a.allocate('c1'))).toBe(indexOf(x));
    a.stop();
  });

  it('a release lands before its index is handed out again', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    const first = await a.allocate('c1');
    a.free('c1');
    const again = await a.allocate('c2'); // no settle in between: the delete is ordered before the create
    expect(again.ok).toBe(true);
    expect(indexOf(again)).toBe(indexOf(first));
    expect((JSON.parse(k.data.get(rangeKey(indexOf(again)))!) as RangeRecord).owner).toBe('c2');
    a.stop();
  });

  it('a slow release still lands before the next write of its index, while other indexes go ahead', async () => {
    const k = casKv();
    const slow = { ...k.kv, async delete(key: string) { for (let i = 0; i < 20; i++) await tick(); k.data.delete(key); } } as unknown as KV;
    const a = newAllocator(slow);
    await a.start();
    const first = await a.allocate('c1');
    await a.allocate('c2');
    a.free('c1');
    const [again, other] = await Promise.all([a.allocate('c3'), a.allocate('c4')]);
    expect(indexOf(again)).toBe(indexOf(first));
    expect((JSON.parse(k.data.get(rangeKey(indexOf(again)))!) as RangeRecord).owner).toBe('c3');
    expect(indexOf(other)).toBe(2);
    await a.settled();
    expect(a.held()).toEqual({ 0: 'c3', 1: 'c2', 2: 'c4' });
    a.stop();
  });

  it('releases through forget when given (the manager purges: no delete marker before the next create)', async () => {
    const k = casKv();
    const forgotten: string[] = [];
    const a = new AllocatorActor(CFG, {
      nc: noRequests, kv: { ...k.kv, delete: () => { throw new Error('delete used instead of forget'); } } as unknown as KV,
      publish: async () => {}, log: pino({ level: 'silent' }),
      forget: async (key) => { await tick(); forgotten.push(key); k.data.delete(key); },
    });
    await a.start();
    const first = await a.allocate('c1');
    a.free('c1');
    const again = await a.allocate('c2');
    expect(forgotten).toEqual([rangeKey(indexOf(first))]);
    expect(indexOf(again)).toBe(indexOf(first));
    expect((JSON.parse(k.data.get(rangeKey(indexOf(again)))!) as RangeRecord).owner).toBe('c2');
    a.stop();
  });

  it('after a restart the held ranges come back from KV and are not handed out again', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    const before = await Promise.all(['c1', 'c2', 'c3'].map((o) => a.allocate(o)));
    a.free('c2');
    await a.settled();
    a.stop();

    const b = newAllocator(k.kv);
    await b.start();
    expect(b.held()).toEqual({ [indexOf(before[0])]: 'c1', [indexOf(before[2])]: 'c3' });
    expect(indexOf(await b.allocate('c1'))).toBe(indexOf(before[0]));
    const fresh = await Promise.all(['c4', 'c5'].map((o) => b.allocate(o)));
    const taken = new Set([indexOf(before[0]), indexOf(before[2])]);
    for (const r of fresh) expect(taken.has(indexOf(r))).toBe(false);
    b.stop();
  });

  it('a range another holder recorded meanwhile is skipped (compare-and-set), not shared', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    // Written behind the allocator's back after it loaded: only the compare-and-set can see it.
    k.data.set(rangeKey(0), JSON.stringify({ owner: 'elsewhere', index: 0 }));
    const r = await a.allocate('c1');
    expect(indexOf(r)).toBe(1);
    expect(a.held()).toEqual({ 0: 'elsewhere', 1: 'c1' });
    a.stop();
  });
  it('allocateEarly: the decision comes before its write lands; the recorded answer confirms it', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    const { decided, recorded } = a.allocateEarly('c1');
    const d = await decided;
    expect(d.ok).toBe(true);
    expect(k.data.has(rangeKey(indexOf(d)))).toBe(false); // decided, not yet written
    // Meanwhile nobody else gets that index.
    expect(indexOf(await a.allocate('c2'))).not.toBe(indexOf(d));
    const r = await recorded;
    expect(indexOf(r)).toBe(indexOf(d));
    expect((JSON.parse(k.data.get(rangeKey(indexOf(d)))!) as RangeRecord).owner).toBe('c1');
    a.stop();
  });

  it('allocateEarly: a foreign holder found by the write makes the recorded answer differ from the decision', async () => {
    const k = casKv();
    const a = newAllocator(k.kv);
    await a.start();
    k.data.set(rangeKey(0), JSON.stringify({ owner: 'elsewhere', index: 0 }));
    const { decided, recorded } = a.allocateEarly('c1');
    expect(indexOf(await decided)).toBe(0);
    expect(indexOf(await recorded)).toBe(1);
    expect(a.held()).toEqual({ 0: 'elsewhere', 1: 'c1' });
    a.stop();
  });

  it('allocateEarly: an owner that holds a range already, or an exhausted pool, is answered at once with the final answer', async () => {
    const k = casKv();
    const a = new AllocatorActor({ ...CFG, count: 1 }, { nc: noRequests, kv: k.kv, publish: async () => {}, log: pino({ level: 'silent' }) });
    await a.start();
    await a.allocate('c1');
    const again = a.allocateEarly('c1');
    expect(indexOf(await again.decided)).toBe(0);
    expect(indexOf(await again.recorded)).toBe(0);
    const none = a.allocateEarly('c2');
    expect((await none.decided).ok).toBe(false);
    a.stop();
  });
});
