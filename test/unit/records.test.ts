import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { ContainerRecords } from '../../actors/manager/records.ts';
import type { StoredRecord } from '../../actors/restore.ts';

// A bus whose every write is logged in order, each answered a turn later (as a round trip would be).
function fakeBus() {
  const log: string[] = [];
  const kv = new Map<string, string>();
  const later = () => new Promise((r) => setTimeout(r, 1));
  const store = {
    async put(k: string, v: string) { await later(); kv.set(k, v); log.push(`put ${(JSON.parse(v) as StoredRecord).state}`); return 1; },
    async delete(k: string) { await later(); kv.delete(k); log.push('delete'); },
  };
  const publish = (state: string) => async () => { await later(); log.push(`event ${state}`); };
  const records = new ContainerRecords(() => store as unknown as KV, { error() {}, warn() {} } as unknown as Logger);
  const rec = (state: string) => ({ state, context: {} }) as unknown as StoredRecord;
  const latest = () => [...kv.values()].map((v) => (JSON.parse(v) as StoredRecord).state);
  return { log, records, publish, rec, latest };
}

describe('ContainerRecords', () => {
  it('publishes every transition in order and writes only the newest of the records queued together', async () => {
    const b = fakeBus();
    for (const s of ['created', 'mapped', 'mounted']) b.records.transition('c1', b.publish(s), b.rec(s));
    await b.records.settled();
    expect(b.log).toEqual(['event created', 'event mapped', 'event mounted', 'put mounted']);
    expect(b.latest()).toEqual(['mounted']);
  });

  it('writes each record when its transitions come one at a time', async () => {
    const b = fakeBus();
    for (const s of ['created', 'running', 'stopped']) {
      b.records.transition('c1', b.publish(s), b.rec(s));
      await b.records.settled();
    }
    expect(b.log).toEqual(['event created', 'put created', 'event running', 'put running', 'event stopped', 'put stopped']);
  });

  it('never skips a record that must land for a newer one written only once; a newer one that must land replaces a once write', async () => {
    const b = fakeBus();
    b.records.transition('c1', b.publish('mounted'), b.rec('mounted'));
    b.records.put('c1', b.rec('with-pid'), { once: true });
    await b.records.settled();
    expect(b.log).toEqual(['event mounted', 'put mounted', 'put with-pid']);

    const c = fakeBus();
    c.records.put('c1', c.rec('with-pid'), { once: true });
    c.records.transition('c1', c.publish('created'), c.rec('created'));
    await c.records.settled();
    expect(c.log).toEqual(['event created', 'put created']);
  });

  it("keeps containers apart, and a removal after the records", async () => {
    const b = fakeBus();
    b.records.transition('a', b.publish('a-created'), b.rec('a-created'));
    b.records.transition('b', b.publish('b-created'), b.rec('b-created'));
    b.records.transition('a', b.publish('a-stopped'), b.rec('a-stopped'));
    b.records.remove('a');
    await b.records.settled();
    expect(b.log.filter((l) => l.includes('b-'))).toEqual(['event b-created', 'put b-created']);
    expect(b.log.filter((l) => !l.includes('b-'))).toEqual(['event a-created', 'event a-stopped', 'put a-stopped', 'delete']);
  });
});
