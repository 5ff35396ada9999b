// The outbox against a fake JetStream that can be "down": order, durability, no waiting on an outage.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxEntry } from '../../bus/outbox.ts';
import { envelope } from '../../bus/events.ts';

const log = { warn() {}, error() {}, info() {} };
const entry = (n: number): OutboxEntry => { const e = envelope('t', { n }); return { subject: `s.${n}`, id: e.id, payload: JSON.stringify(e) }; };

describe('Outbox', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
  const mk = () => { const d = mkdtempSync(join(tmpdir(), 'outbox-')); dirs.push(d); return d; };

  it('keeps events on disk while the bus is down and publishes them in order once it is back', async () => {
    const dir = mk();
    let up = true;
    const got: string[] = [];
    const ob = new Outbox(dir, async (e) => { if (!up) throw new Error('down'); got.push(e.subject); }, log);
    await ob.add(entry(1));
    expect(readdirSync(dir)).toEqual([]);
    up = false;
    const es = [2, 3, 4].map(entry);
    for (const e of es) await ob.add(e); // resolves although nothing is acknowledged
    expect(readdirSync(dir).sort()).toEqual(es.map((e) => `${e.id}.json`));
    up = true;
    ob.kick();
    for (let i = 0; i < 100 && ob.pending(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(['s.1', 's.2', 's.3', 's.4']);
    expect(readdirSync(dir)).toEqual([]);
    await ob.close();
  });

  it('loads what an earlier run left, oldest first, dropping a torn file', async () => {
    const dir = mk();
    const es = [1, 2].map(entry);
    for (const e of [...es].reverse()) writeFileSync(join(dir, `${e.id}.json`), JSON.stringify(e));
    writeFileSync(join(dir, '01ARZ3NDEKTSV4RRFFQ69G5FAV.json'), '{"subj');
    const got: string[] = [];
    const ob = new Outbox(dir, async (e) => { got.push(e.id); }, log);
    expect(ob.load()).toBe(2);
    for (let i = 0; i < 100 && ob.pending(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(es.map((e) => e.id));
    expect(readdirSync(dir)).toEqual([]);
    await ob.close();
  });

  it('writes the adds of one event-loop turn as one file, in add order, and loads them back in that order', async () => {
    const dir = mk();
    const ob = new Outbox(dir, async () => { throw new Error('down'); }, log);
    const es = [1, 2, 3].map(entry);
    await Promise.all([ob.add(es[0]!), ob.addMany([es[1]!, es[2]!])]);
    expect(readdirSync(dir)).toEqual([`${es[0]!.id}.json`]);
    expect(readFileSync(join(dir, `${es[0]!.id}.json`), 'utf8').split('\n').map((l) => (JSON.parse(l) as OutboxEntry).subject)).toEqual(['s.1', 's.2', 's.3']);
    await ob.close(100);
    const got: string[] = [];
    const ob2 = new Outbox(dir, async (e) => { got.push(e.subject); }, log);
    expect(ob2.load()).toBe(3);
    for (let i = 0; i < 100 && ob2.pending(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(['s.1', 's.2', 's.3']);
    expect(readdirSync(dir)).toEqual([]);
    await ob2.close();
  });

  it('a close writes what was added this turn before it gives up', async () => {
    const dir = mk();
    const ob = new Outbox(dir, async () => { throw new Error('down'); }, log);
    const e = entry(1);
    void ob.add(e);
    await ob.close(100);
    expect(readdirSync(dir)).toEqual([`${e.id}.json`]);
  });

  it('a close leaves unacknowledged events on disk for the next start', async () => {
    const dir = mk();
    const ob = new Outbox(dir, async () => { throw new Error('down'); }, log);
    const e = entry(1);
    await ob.add(e);
    await ob.close(100);
    expect(readdirSync(dir)).toEqual([`${e.id}.json`]);
  });

  it('keeps a batch in one file of lines until every event of it is acknowledged, and loads it back (a torn line dropped)', async () => {
    const dir = mk();
    const es = [1, 2, 3].map(entry);
    const ob = new Outbox(dir, async () => { throw new Error('down'); }, log);
    await ob.addMany(es);
    expect(readdirSync(dir)).toEqual([`${es[0]!.id}.json`]);
    await ob.close(50);
    // A crash mid-write: the last line is torn.
    const f = join(dir, `${es[0]!.id}.json`);
    writeFileSync(f, `${readFileSync(f, 'utf8')}\n{"subject":"s.4","i`);
    const got: string[] = [];
    let acks = 0;
    const ob2 = new Outbox(dir, async (e) => { got.push(e.subject); if (++acks === 2) expect(readdirSync(dir)).toEqual([`${es[0]!.id}.json`]); }, log);
    expect(ob2.load()).toBe(3);
    for (let i = 0; i < 100 && ob2.pending(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(['s.1', 's.2', 's.3']);
    expect(readdirSync(dir)).toEqual([]);
    await ob2.close();
  });

  it('sends a window at once and, after a failure inside it, everything from the failed event again, in order', async () => {
    const dir = mk();
    const sent: string[] = [];
    let inFlight = 0;
    let most = 0;
    let failOnce = true;
    const ob = new Outbox(dir, async (e) => {
      sent.push(e.subject);
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
      if (e.subject === 's.3' && failOnce) { failOnce = false; throw new Error('timeout'); }
    }, log);
    const es = [1, 2, 3, 4, 5].map(entry);
    await ob.addMany(es);
    for (let i = 0; i < 200 && ob.pending(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(most).toBe(5);
    // 1..5 in one window; 3 failed: 3, 4, 5 again (4 and 5 are duplicates for JetStream), 3 first.
    expect(sent).toEqual(['s.1', 's.2', 's.3', 's.4', 's.5', 's.3', 's.4', 's.5']);
    expect(readdirSync(dir)).toEqual([]);
    await ob.close();
  });
});
