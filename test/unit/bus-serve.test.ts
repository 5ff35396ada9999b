// The bus owns its names and shapes: one request/reply helper (bus/serve.ts) with one error reply
// {ok:false, code, reason} for every endpoint that answers {ok}, the KV key layouts (bus/keys.ts),
// and publish typed by the event schema (the type string fixes the data's shape).
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { serve, type ServeConnection } from '../../bus/serve.ts';
import { containerRecordKeys, rangeKeys, sysctlBaselineKeys, sysctlContainerKeys, sysctlLocalKeys } from '../../bus/keys.ts';
import { subjects, sysctlSubjects } from '../../bus/subjects.ts';
import type { Publish } from '../../bus/events.ts';
import { EciError } from '../../actors/errors.ts';
import { AllocatorActor } from '../../actors/allocator.actor.ts';
import { SysctlReconciler } from '../../actors/sysctl/reconciler.actor.ts';
import { VetterActor, fromWire } from '../../actors/vetter.actor.ts';
import { keyByName } from '../../actors/sysctl/keys.ts';
import { memKv } from '../helpers/mem-kv.ts';
import type { KV } from '@nats-io/kv';

/** An in-memory bus: subscribe registers the endpoint, request calls it and resolves with its reply. */
function fakeBus() {
  const subs = new Map<string, (err: Error | null, m: { string(): string; respond(d: string): boolean }) => void>();
  const nc: ServeConnection = {
    subscribe(subject, o) { subs.set(subject, o.callback); return { unsubscribe: () => subs.delete(subject) }; },
  };
  const request = (subject: string, text: string) => new Promise<string>((resolve) => {
    const cb = subs.get(subject);
    if (!cb) throw new Error(`no endpoint on ${subject}`);
    cb(null, { string: () => text, respond: (d) => { resolve(d); return true; } });
  });
  return { nc, request, json: async (subject: string, text: string) => JSON.parse(await request(subject, text)) };
}

describe('serve: one request/reply helper', () => {
  it('answers with the handler\'s result, sync or async', async () => {
    const b = fakeBus();
    serve(b.nc, { subject: 's.sync', handle: (r: { n: number }) => ({ ok: true, n: r.n + 1 }) });
    serve(b.nc, { subject: 's.async', handle: async (r: { n: number }) => ({ ok: true, n: r.n * 2 }) });
    expect(await b.json('s.sync', '{"n":1}')).toEqual({ ok: true, n: 2 });
    expect(await b.json('s.async', '{"n":4}')).toEqual({ ok: true, n: 8 });
  });

  it('answers every failure as {ok:false, code, reason}', async () => {
    const b = fakeBus();
    serve(b.nc, { subject: 's.typed', handle: () => { throw new EciError('EFULL', 'no room'); } });
    serve(b.nc, { subject: 's.plain', handle: async () => { throw new Error('boom'); } });
    serve(b.nc, { subject: 's.json', handle: () => ({ ok: true }) });
    expect(await b.json('s.typed', '{}')).toEqual({ ok: false, code: 'EFULL', reason: 'no room' });
    expect(await b.json('s.plain', '{}')).toEqual({ ok: false, code: 'EINTERNAL', reason: 'boom' });
    expect(await b.json('s.json', 'not json')).toMatchObject({ ok: false, code: 'EBADREQ', reason: expect.stringMatching(/^malformed request: /) });
  });

  it('the allocator and the sysctl reconciler answer malformed requests alike', async () => {
    const b = fakeBus();
    const log = pino({ level: 'silent' });
    const kv = memKv();
    const cas = { ...kv, async create(k: string, v: string) { if (await kv.get(k)) throw new Error('wrong last sequence'); await kv.put(k, v); return 1; } };
    const alloc = new AllocatorActor({ base: 100000, size: 65536, count: 4 }, { nc: b.nc, kv: cas as unknown as KV, publish: async () => {}, log });
    await alloc.start();
    const FM = keyByName('fs.file-max')!;
    const host = { async exists() { return true; }, async read() { return 100; }, async write() {} };
    const sysctl = new SysctlReconciler({ kv: memKv(), host, keys: [FM], log, publish: async () => {}, nc: b.nc });
    await sysctl.start();
    for (const subject of [subjects.allocatorAllocate, subjects.allocatorFree, sysctlSubjects.set]) {
      expect(await b.json(subject, 'not json'), subject).toMatchObject({ ok: false, code: 'EBADREQ' });
    }
    expect(await b.json(subjects.allocatorAllocate, '{}')).toEqual({ ok: false, code: 'EBADREQ', reason: 'malformed request: expected {"owner": "<container id>"}' });
    expect(await b.json(subjects.allocatorAllocate, '{"owner":"c1"}')).toMatchObject({ ok: true, owner: 'c1', index: 0 });
    expect(await b.json(subjects.allocatorList, '')).toEqual({ 0: 'c1' });
    expect(await b.json(sysctlSubjects.set, JSON.stringify({ container: 'a', key: 'fs.file-max', value: -1 }))).toMatchObject({ ok: false, code: 'EINVAL' });
    alloc.stop();
    sysctl.stop();
  });

  it('the vetter answers a malformed request with a refusal (its own failure form), not {ok:false}', async () => {
    const b = fakeBus();
    const v = new VetterActor(b.nc);
    v.start();
    const verdict = fromWire<{ kind: string; errno: number; code: string; reason: string }>(await b.request(subjects.vetterDecide('*'), 'not json'));
    expect(verdict).toMatchObject({ kind: 'errno', errno: 1, code: 'EPERM', reason: expect.stringMatching(/^malformed vet request: /) });
    v.stop();
  });
});

describe('KV key layouts', () => {
  it('builds each key and the filter that lists its kind', () => {
    expect(rangeKeys.key(3)).toBe('range.3');
    expect(rangeKeys.all).toBe('range.>');
    expect(rangeKeys.rest('range.12')).toBe('12');
    expect(rangeKeys.rest('other.12')).toBeUndefined();
    expect(containerRecordKeys.key('abc')).toBe('abc');
    expect(containerRecordKeys.idOf(containerRecordKeys.key('abc'))).toBe('abc');
    expect(sysctlBaselineKeys.key('fs.file-max')).toBe('baseline.fs-file-max');
    expect(sysctlContainerKeys.key('c1')).toBe('container.c1');
    expect(sysctlContainerKeys.all).toBe('container.>');
    expect(sysctlLocalKeys.rest(sysctlLocalKeys.key('c1'))).toBe('c1');
    expect(sysctlLocalKeys.all).toBe('local.>');
  });
});

describe('publish is typed by the event schema', () => {
  it('accepts an event type with its own data and rejects another type\'s data (checked by tsc)', async () => {
    const seen: unknown[] = [];
    const publish: Publish = async (subject, type, data) => { seen.push([subject, type, data]); };
    const r = { hostID: 100000, size: 65536 };
    await publish(subjects.allocatorEvent('allocated'), 'allocator.allocated', { container: 'c1', index: 0, uid: r, gid: r });
    await publish(subjects.containerEvent('c1', 'running'), 'container.running', { container: 'c1', state: 'running' });
    // @ts-expect-error container.running does not carry allocator data
    await publish(subjects.containerEvent('c1', 'running'), 'container.running', { container: 'c1', index: 0, uid: r, gid: r });
    // @ts-expect-error an event type the schema does not know
    await publish('eci.v1.evt.nope', 'nope.happened', {});
    expect(seen).toHaveLength(4);
  });
});
