// The bus going away: nats-server killed with -9 under a running manager. While it is down, creates
// are refused with one line and leave nothing; events of what happens meanwhile (a container deleted)
// wait in the outbox and reach the stream exactly once, in order, when NATS is back. The embedded
// server is supervised: killed, it is started again on the same store.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childrenOf, eciRunc, makeBundle, mountsUnder, sleep, until } from '../helpers/bundle.ts';
import { replay } from '../helpers/events.ts';
import { busConnect, registerBus } from '../helpers/bus.ts';
import { freePort, startManager, type TestManager } from '../helpers/manager.ts';

const root = process.getuid?.() === 0;
const CONTAINER_STATES = ['container.created', 'container.mapped', 'container.mounted', 'container.running', 'container.stopped'];

// An external bus with a password, as the manager requires (ECI_NATS_USER / ECI_NATS_PASSWORD).
const NATS_USER = 'eci-test';
const NATS_PASSWORD = 'external-bus-password-for-tests';

function startNats(storeDir: string, port: number): Promise<ChildProcess> {
  const conf = `${storeDir}.conf`;
  writeFileSync(conf, `authorization { user: "${NATS_USER}", password: "${NATS_PASSWORD}" }\n`, { mode: 0o600 });
  const p = spawn('nats-server', ['-c', conf, '-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  registerBus(`nats://127.0.0.1:${port}`, { user: NATS_USER, pass: NATS_PASSWORD });
  return until(async () => {
    try { await (await busConnect(`nats://127.0.0.1:${port}`)).close(); return p; } catch { return undefined; }
  }, 'nats-server to listen');
}

const kill9 = async (p: ChildProcess) => {
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
};

describe.skipIf(!root)(`nats-server killed and restarted${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  let nats: ChildProcess | undefined;
  let m: TestManager | undefined;
  let m2: TestManager | undefined;

  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-nats-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    // Side by side: one manager stuck in its stop must not leave the other (and its nats-server) running.
    await Promise.allSettled([m?.destroy(), m2?.destroy()]);
    if (nats && nats.exitCode === null) await kill9(nats);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses creates during the outage, keeps the events made meanwhile, and publishes each once, in order, after', async () => {
    const port = await freePort();
    const store = join(dir, 'js');
    nats = await startNats(store, port);
    const url = `nats://127.0.0.1:${port}`;
    m = await startManager({ env: { ECI_NATS_URL: url, ECI_NATS_USER: NATS_USER, ECI_NATS_PASSWORD: NATS_PASSWORD } });
    const env = { ECI_SOCKET: m.socket };
    const runcRoot = join(dir, 'runc');
    const caps = ['CAP_SYS_ADMIN'];
    const b1 = await makeBundle(join(dir, 'b1'), ['sleep', '1000'], (spec) => { spec.process.capabilities = { bounding: caps, effective: caps, permitted: caps }; });
    const b2 = await makeBundle(join(dir, 'b2'), ['true']);

    expect((await eciRunc(['--root', runcRoot, 'create', '--bundle', b1, 'nr1'], env)).code).toBe(0);
    expect((await eciRunc(['--root', runcRoot, 'start', 'nr1'], env)).code).toBe(0);
    await until(async () => (await m!.ps()).containers.find((c) => c.id === 'nr1')?.state === 'running', 'nr1 running');

    // With the bus up, a tmpfs mount inside the container is vetted and performed.
    const mountIn = (target: string) => eciRunc(['--root', runcRoot, 'exec', 'nr1', 'sh', '-c', `mkdir -p ${target} && mount -t tmpfs none ${target}`], env);
    const up = await mountIn('/mnt/a');
    expect(up.code, up.stderr).toBe(0);

    await kill9(nats);
    await until(() => m!.log().includes('NATS disconnected'), 'the manager to see the outage');

    // Running containers stay vetted during the outage: the vetter actor lives in the manager and
    // the feed asks it directly, so the same mount is still judged and performed; its audit event
    // waits in the outbox (checked in the stream below).
    const down = await mountIn('/mnt/b');
    expect(down.code, down.stderr).toBe(0);

    // During the outage: a create fails closed, with one line, holding no range and no mount.
    const t = Date.now();
    const r = await eciRunc(['--root', runcRoot, 'create', '--bundle', b2, 'nr2'], env);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(/^eci: the event bus \(NATS at nats:\/\/127\.0\.0\.1:\d+\) is down: refusing to create a container until it is back$/);
    expect(Date.now() - t).toBeLessThan(3000); // refused up front, not after a request timeout
    expect(existsSync(join(runcRoot, 'nr2'))).toBe(false);
    const ps = await m.ps();
    expect(ps.containers.map((c) => c.id)).toEqual(['nr1']);
    expect(Object.values(ps.ranges)).toEqual(['nr1']);
    expect(mountsUnder(join(m.dir, 'run', 'containers', 'nr2'))).toEqual([]);

    // Also during the outage: nr1 is stopped and deleted. Its events go to the outbox.
    expect((await eciRunc(['--root', runcRoot, 'kill', 'nr1', 'KILL'], env)).code).toBe(0);
    await until(async () => JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'nr1'], env)).stdout || '{}').status === 'stopped', 'nr1 stopped');
    const del = await eciRunc(['--root', runcRoot, 'delete', 'nr1'], env);
    expect(del.code, del.stderr).toBe(0);
    await until(async () => (await m!.ps()).containers.length === 0, 'nr1 gone from the manager');
    expect((await m.ps()).ranges).toEqual({});
    expect(mountsUnder(join(m.dir, 'run', 'containers'))).toEqual([]);
    const outbox = join(m.dir, 'state', 'outbox');
    const kept = readdirSync(outbox);
    // container.stopped at least (allocator.freed follows its KV write, which waits for the bus)
    expect(kept.length).toBeGreaterThanOrEqual(1);

    // NATS back on the same store: the manager reconnects by itself and flushes the outbox.
    nats = await startNats(store, port);
    await until(() => m!.log().includes('NATS reconnected'), 'the manager to reconnect');
    await until(() => readdirSync(outbox).length === 0, 'the outbox to drain');

    // allocator.freed follows the range's KV release, which is retried (with backoff) until the bus is back.
    const events = await until(async () => {
      const all = await replay(url, 'eci.v1.evt.>');
      return all.some((e) => e.event.type === 'allocator.freed') ? all : undefined;
    }, 'allocator.freed');
    const mine = events.filter((e) => (e.event.data as { container?: string }).container === 'nr1');
    expect(mine.filter((e) => e.event.type.startsWith('container.')).map((e) => e.event.type)).toEqual(CONTAINER_STATES);
    expect(mine.filter((e) => e.event.type.startsWith('allocator.')).map((e) => e.event.type)).toEqual(['allocator.allocated', 'allocator.freed']);
    expect(new Set(events.map((e) => e.event.id)).size).toBe(events.length); // no ulid twice
    expect(events.filter((e) => (e.event.data as { container?: string }).container === 'nr2')).toEqual([]);
    // The decision made while the bus was down is in the stream, once.
    const audits = events.filter((e) => e.event.type === 'vetter.decision' && JSON.stringify(e.event.data).includes('/mnt/b'));
    expect(audits).toHaveLength(1);
    expect((audits[0].event.data as { verdict: string }).verdict, `${JSON.stringify(audits[0].event.data)}\n${m.log().split('\n').filter((l) => l.includes('mnt/b') || l.includes('"level":50') || l.includes('"level":40')).slice(-15).join('\n')}`).toBe('performed');
    // Stream order is publish order: the ulids (monotonic in the manager) ascend.
    const ids = mine.map((e) => e.event.id);
    expect([...ids].sort()).toEqual(ids);

    // Creates work again.
    expect((await eciRunc(['--root', runcRoot, 'run', '--bundle', b2, 'nr3'], env)).code).toBe(0);
    await until(async () => (await m!.ps()).ranges && Object.keys((await m!.ps()).ranges).length === 0, 'nr3 released');
  });

  it('publishes an outbox entry the stream already holds only once (same ulid = same message id)', async () => {
    // A manager killed between the ack and removing the file republishes it at the next start.
    const url = m!.env.ECI_NATS_URL!;
    const before = await replay(url, 'eci.v1.evt.container.nr3.>');
    expect(before.length).toBeGreaterThan(0);
    const last = before.at(-1)!;
    await m!.stop();
    writeFileSync(join(m!.dir, 'state', 'outbox', `${last.event.id}.json`), JSON.stringify({ subject: last.subject, id: last.event.id, payload: JSON.stringify(last.event) }));
    await m!.restart();
    await until(() => readdirSync(join(m!.dir, 'state', 'outbox')).length === 0, 'the outbox to drain');
    const after = await replay(url, 'eci.v1.evt.container.nr3.>');
    expect(after.map((e) => e.event.id)).toEqual(before.map((e) => e.event.id));
  });

  it('a manager stopped during an outage keeps its unsent events on disk and sends them at its next start', async () => {
    const url = m!.env.ECI_NATS_URL!;
    const store = join(dir, 'js');
    const port = Number(new URL(url).port);
    const seen = () => m!.log().split('NATS disconnected').length;
    const before = seen();
    await kill9(nats!);
    await until(() => seen() > before, 'the manager to see the outage');
    const t = Date.now();
    await m!.stop(); // must not wait for the bus
    expect(Date.now() - t).toBeLessThan(10_000);
    const outbox = join(m!.dir, 'state', 'outbox');
    const kept = readdirSync(outbox).map((f) => f.slice(0, 26));
    expect(kept.length).toBeGreaterThanOrEqual(1); // manager.stopping at least
    nats = await startNats(store, port);
    await m!.restart();
    await until(() => readdirSync(outbox).length === 0, 'the outbox to drain');
    const ids = (await replay(url, 'eci.v1.evt.>')).map((e) => e.event.id);
    for (const id of kept) expect(ids.filter((x) => x === id)).toEqual([id]);
  });

  it('restarts its embedded nats-server when it is killed, and keeps working', async () => {
    m2 = await startManager();
    const pidFile = join(m2.dir, 'state', 'nats.pid');
    const oldPid = Number(readFileSync(pidFile, 'utf8'));
    expect(oldPid).toBeGreaterThan(0);
    process.kill(oldPid, 'SIGKILL');
    const newPid = await until(() => {
      const p = Number(readFileSync(pidFile, 'utf8'));
      return p !== oldPid && existsSync(`/proc/${p}`) ? p : 0;
    }, 'a new nats-server');
    await until(() => m2!.log().includes('NATS reconnected'), 'the manager to reconnect');
    const b = await makeBundle(join(dir, 'b4'), ['true']);
    const r = await eciRunc(['--root', join(dir, 'runc2'), 'run', '--bundle', b, 'nr4'], { ECI_SOCKET: m2.socket });
    expect(r.code, r.stderr).toBe(0);
    await until(async () => (await replay(m2!.natsUrl, 'eci.v1.evt.container.nr4.>')).some((e) => e.event.type === 'container.stopped'), 'nr4 events');
    const restarted = await replay(m2.natsUrl, 'eci.v1.evt.manager.nats-restarted');
    expect(restarted.map((e) => e.event.data)).toEqual([{ pid: m2.pid(), oldNatsPid: oldPid, natsPid: newPid }]);
    // The new server is the manager's supervised child, not a second copy.
    expect(childrenOf(m2.pid())).toContain(newPid);
    await sleep(0);
  });
});
