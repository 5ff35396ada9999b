// The actors as NATS micro-services: $SRV PING/INFO/STATS answered by a real manager on a real
// nats-server, counters that move with real requests, and `eci services` printing them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { OBSERVER_INBOX } from '../../bus/auth.ts';
import { discover, INFO_TYPE, PING_TYPE, STATS_TYPE } from '../../bus/services.ts';
import { subjects } from '../../bus/subjects.ts';
import { startManager, REPO, type TestManager } from '../helpers/manager.ts';
import { runCmd } from '../helpers/run.ts';
import { busConnect } from '../helpers/bus.ts';

let m: TestManager;
let nc: NatsConnection;

beforeAll(async () => {
  m = await startManager();
  // The manager's identity: the test sends requests to the allocator, which only the manager may.
  nc = await busConnect(m.natsUrl, 'manager');
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await m?.destroy();
});

type Stats = { name: string; id: string; type: string; endpoints: { name: string; subject: string; num_requests: number; num_errors: number; last_error: string }[] };
const stats = async (name: string) => (await discover(nc, 'STATS', name)) as unknown as Stats[];

describe('actors as NATS services', () => {
  it('answers $SRV.PING from each actor with the protocol type', async () => {
    const pings = (await discover(nc, 'PING')) as { type: string; name: string; id: string; version: string }[];
    expect(pings.map((p) => p.name).sort()).toEqual(['eci-allocator', 'eci-sysctl', 'eci-vetter']);
    for (const p of pings) {
      expect(p.type).toBe(PING_TYPE);
      expect(p.version).toBe('0.1.0');
      expect(p.id).toMatch(/^[0-9A-Z]{26}$/);
    }
    // A ping addressed by name and id reaches exactly that instance.
    const one = await discover(nc, 'PING', `${pings[0].name}.${pings[0].id}`);
    expect(one).toHaveLength(1);
  });

  it('answers the observer identity (read-only) too', async () => {
    const o = await busConnect(m.natsUrl, 'observer');
    try {
      const pings = (await discover(o, 'PING', undefined, { inboxPrefix: OBSERVER_INBOX })) as { name: string }[];
      expect(pings.map((p) => p.name).sort()).toEqual(['eci-allocator', 'eci-sysctl', 'eci-vetter']);
    } finally {
      await o.close();
    }
  });

  it('INFO lists the real request subjects as endpoints', async () => {
    const [info] = (await discover(nc, 'INFO', 'eci-vetter')) as { type: string; endpoints: { name: string; subject: string }[] }[];
    expect(info.type).toBe(INFO_TYPE);
    expect(info.endpoints).toEqual([{ name: 'decide', subject: subjects.vetterDecide('*'), queue_group: 'eci-vetter', metadata: {} }]);
  });

  it('STATS counts requests and error replies as they happen', async () => {
    const before = (await stats('eci-allocator'))[0];
    expect(before.type).toBe(STATS_TYPE);
    const list0 = before.endpoints.find((e) => e.name === 'list')!.num_requests;
    await nc.request(subjects.allocatorList, '', { timeout: 2000 });
    await nc.request(subjects.allocatorList, '', { timeout: 2000 });
    // Garbage to an endpoint: answered with an error (not a crash), and counted as one.
    const bad = await nc.request(subjects.allocatorAllocate, 'not json', { timeout: 2000 });
    expect(bad.json<{ ok: boolean; code: string }>()).toMatchObject({ ok: false });
    const after = (await stats('eci-allocator'))[0];
    expect(after.endpoints.find((e) => e.name === 'list')!.num_requests).toBe(list0 + 2);
    const alloc = after.endpoints.find((e) => e.name === 'allocate')!;
    expect(alloc.num_errors).toBeGreaterThanOrEqual(1);
    expect(alloc.last_error).not.toBe('');
    // The manager is still serving.
    expect((await m.ps()).containers).toBeDefined();
  });

  it('`eci services` prints one line per endpoint, and fails clearly with no bus', async () => {
    const r = await runCmd(`${REPO}/bin/eci`, ['services'], { ...process.env, ...m.env }, undefined, 15_000);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0].split('\t')).toEqual(['SERVICE', 'ID', 'VERSION', 'ENDPOINT', 'SUBJECT', 'REQUESTS', 'ERRORS', 'AVG']);
    expect(lines.filter((l) => l.startsWith('eci-allocator\t'))).toHaveLength(3);
    expect(lines.some((l) => l.startsWith('eci-vetter\t') && l.includes(`\t${subjects.vetterDecide('*')}\t`))).toBe(true);
    const j = await runCmd(`${REPO}/bin/eci`, ['services', 'eci-sysctl', '--json'], { ...process.env, ...m.env }, undefined, 15_000);
    expect(JSON.parse(j.stdout).map((s: { name: string }) => s.name)).toEqual(['eci-sysctl']);
    const down = await runCmd(`${REPO}/bin/eci`, ['services'], { ...process.env, ...m.env, ECI_NATS_URL: 'nats://127.0.0.1:1' }, undefined, 15_000);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/^eci: cannot reach NATS/);
  });
});
