// Only root steers the bus (issue 13, findings 1 and 4). A real manager on its embedded nats-server;
// two throwaway host users made here: one in a throwaway "eci" group (the readers), one not. Without
// credentials nobody connects; the observer's credentials are readable by the group only; the observer
// reads events and $SRV but cannot ask the allocator, forge or purge events, or touch the stream.
// The manager works end to end meanwhile, and a container's burst of identical vetted calls is
// coalesced into counted events that account for every call.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { observerCredentialsPath } from '../../bus/auth.ts';
import { busTarget, probeBus, runAs as runAsUser } from '../attack/bus-probe.ts';
import { identitiesPath } from '../../bus/connect.ts';
import { configPath } from '../../bus/embedded.ts';
import { eciRunc, makeBundle, until } from '../helpers/bundle.ts';
import { replay } from '../helpers/events.ts';
import { busConnect } from '../helpers/bus.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort, REPO, startManager, type TestManager } from '../helpers/manager.ts';

const root = process.getuid?.() === 0;
const hasUseradd = (() => { try { execFileSync('which', ['useradd', 'groupadd', 'runuser']); return true; } catch { return false; } })();
const tag = `${process.pid % 100000}`;
const GROUP = `ecitg${tag}`;
const MEMBER = `ecimem${tag}`;
const OTHER = `ecioth${tag}`;

describe.skipIf(!root || !hasUseradd)(`the bus admits root and, read-only, the eci group${root ? '' : ' (skipped: needs root)'}`, () => {
  let m: TestManager;
  let dir: string;
  const attack = async (user: string) => {
    const r = await probeBus(user, busTarget(m.natsUrl, m.dir), REPO);
    expect(r.code, r.stderr).toBe(0);
    return r.result!;
  };
  const runAs = (user: string, argv: string[], env: Record<string, string>) => runAsUser(user, argv, REPO, env);

  beforeAll(async () => {
    execFileSync('groupadd', [GROUP]);
    execFileSync('useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', '-G', GROUP, MEMBER]);
    execFileSync('useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', OTHER]);
    dir = mkdtempSync('/tmp/eci-busauth-');
    chmodSync(dir, 0o755);
    m = await startManager({ env: { ECI_GROUP: GROUP } });
  }, 60_000);

  afterAll(async () => {
    await m?.destroy();
    for (const u of [MEMBER, OTHER]) { try { execFileSync('userdel', ['-r', u], { stdio: 'ignore' }); } catch { /* no home: still removed */ } }
    try { execFileSync('groupdel', [GROUP]); } catch { /* was not made */ }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs nats-server on a config the real binary accepts, kept root-only, and the observer file for the group', () => {
    const conf = configPath(join(m.dir, 'state'));
    const t = spawnSync('nats-server', ['-c', conf, '-t'], { encoding: 'utf8' });
    expect(t.status, t.stderr).toBe(0);
    expect(t.stderr + t.stdout).toMatch(/configuration file .* is valid/);
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    expect(statSync(identitiesPath(join(m.dir, 'state'))).mode & 0o777).toBe(0o600);
    const obs = statSync(observerCredentialsPath(join(m.dir, 'run')));
    expect(obs.mode & 0o777).toBe(0o640);
    expect(obs.uid).toBe(0);
    expect(obs.gid).toBe(Number(execFileSync('getent', ['group', GROUP], { encoding: 'utf8' }).split(':')[2]));
  });

  it('a user outside the group cannot connect, guess, or read either credentials file', async () => {
    const o = await attack(OTHER);
    expect(o.anonymous).toMatch(/^refused: .*(Authorization|authorization)/);
    expect(o.guess).toMatch(/^refused: .*(Authorization|authorization)/);
    expect(o.readManager).toBe('EACCES');
    expect(o.readObserver).toBe('EACCES');
    expect(o.allocate).toBeUndefined(); // never got as far as a connection
    const ev = await runAs(OTHER, [join(REPO, 'bin/eci'), 'events'], m.env);
    expect(ev.code).toBe(1);
    expect(ev.stderr.trim().split('\n')).toHaveLength(1);
    expect(ev.stderr).toMatch(/^eci: cannot read the bus credentials .*observer\.json \(EACCES\): only root and members of the eci group/);
  });

  it('a group member reads events and $SRV as the observer, and can change nothing', async () => {
    const before = (await replay(m.natsUrl, 'eci.v1.evt.>')).length;
    expect(before).toBeGreaterThan(0);
    const o = await attack(MEMBER);
    expect(o.anonymous).toMatch(/^refused/);
    expect(o.readManager).toBe('EACCES');
    expect(o.readObserver).toBe('ok');
    for (const k of ['allocate', 'free', 'sysctl', 'decide', 'forge', 'purge', 'delete', 'update', 'kvWrite']) {
      expect(o[k], k).toMatch(/^refused: .*Permissions Violation for Publish/);
    }
    expect(o.info).toMatch(/^answered: .*"ECI_EVENTS"/);
    expect(o.subscribeErrors).toEqual(expect.arrayContaining([
      expect.stringMatching(/Subscription to "eci\.v1\.allocator\.>"/), expect.stringMatching(/Subscription to "_INBOX\.>"/),
    ]));
    // The CLI as that member: events (replay) and services work.
    const ev = await runAs(MEMBER, [join(REPO, 'bin/eci'), 'events', '--json', '--kind', 'manager'], m.env);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).type)).toContain('manager.started');
    const sv = await runAs(MEMBER, [join(REPO, 'bin/eci'), 'services', '--json'], m.env);
    expect(sv.code, sv.stderr).toBe(0);
    expect(JSON.parse(sv.stdout).map((s: { name: string }) => s.name).sort()).toEqual(['eci-allocator', 'eci-sysctl', 'eci-vetter']);
    // Nothing was purged or forged, and no range was taken.
    const after = await replay(m.natsUrl, 'eci.v1.evt.>');
    expect(after.length).toBeGreaterThanOrEqual(before);
    expect(after.some((e) => e.subject.includes('forged'))).toBe(false);
    expect((await m.ps()).ranges).toEqual({});
    // A consumer that would never expire is allowed by the subject, and swept by the manager (at
    // start and every minute): here, at its next start.
    expect(o.durable).toMatch(/^answered: .*"name":"squatter"/);
    const consumers = async () => {
      const nc = await busConnect(m.natsUrl, 'manager');
      try {
        const names: string[] = [];
        for await (const c of (await jetstreamManager(nc)).consumers.list('ECI_EVENTS')) names.push(c.name);
        return names;
      } finally {
        await nc.close();
      }
    };
    expect(await consumers()).toContain('squatter');
    await m.stop();
    await m.restart();
    await until(async () => !(await consumers()).includes('squatter'), 'the stray consumer to be swept');
    expect(m.log()).toMatch(/"consumers":\["squatter"\].*deleted consumers on the event stream that would never expire/);
  });

  it('the manager still runs containers end to end, and coalesces a burst of identical vetted calls', async () => {
    const caps = ['CAP_SYS_ADMIN'];
    // 300 identical refused unmounts: at most identicalPerSecond (5) a second go out one by one.
    const b = await makeBundle(join(dir, 'b1'), ['sh', '-c', 'i=0; while [ $i -lt 300 ]; do umount /nonexistent 2>/dev/null; i=$((i+1)); done'],
      (spec) => { spec.process.capabilities = { bounding: caps, effective: caps, permitted: caps }; });
    const r = await eciRunc(['--root', join(dir, 'runc'), 'run', '--bundle', b, 'ba1'], { ECI_SOCKET: m.socket });
    expect(r.code, r.stderr).toBe(0);
    const states = await until(async () => {
      const ev = await replay(m.natsUrl, 'eci.v1.evt.container.ba1.>');
      return ev.some((e) => e.event.type === 'container.stopped') && ev.map((e) => e.event.type);
    }, 'ba1 to stop');
    expect(states).toEqual(['container.created', 'container.mapped', 'container.mounted', 'container.running', 'container.stopped']);
    const audit = await until(async () => {
      const ev = await replay(m.natsUrl, 'eci.v1.evt.vetter.ba1.>');
      const kept = ev.filter((e) => e.event.type === 'vetter.decision' && (e.event.data as { syscall: string }).syscall === 'umount2');
      const sums = ev.filter((e) => e.event.type === 'vetter.decisions-coalesced').map((e) => e.event.data as { syscall: string; count: number; from: string; to: string });
      const total = kept.length + sums.reduce((n, s) => n + s.count, 0);
      return total >= 300 && { kept, sums, total };
    }, 'every unmount to be accounted for (one by one or counted)');
    expect(audit.sums.length).toBeGreaterThan(0);
    expect(audit.sums.every((s) => s.syscall === 'umount2')).toBe(true);
    // One by one: at most 5 in each second the burst spanned (by the events' own times).
    const ts = audit.kept.map((e) => Date.parse(e.event.ts));
    const seconds = Math.floor((Math.max(...ts) - Math.min(...ts)) / 1000) + 2;
    expect(audit.kept.length).toBeLessThanOrEqual(5 * seconds);
    expect(audit.kept.length).toBeLessThan(audit.total);
  });

  it('refuses an external bus without credentials in one line, unless the administrator allows it', async () => {
    const port = await freePort();
    const store = join(dir, 'ext');
    const nats = spawn('nats-server', ['-js', '-sd', store, '-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      const url = `nats://127.0.0.1:${port}`;
      await until(() => new Promise<boolean>((res) => {
        const s = createConnection({ host: '127.0.0.1', port }).once('connect', () => { s.destroy(); res(true); }).once('error', () => res(false));
      }), 'the external nats-server to listen');
      const refused = await startManager({ dir: join(dir, 'm-refused'), env: { ECI_NATS_URL: url } }).then(
        async (x) => { await x.destroy(); return 'started'; },
        (e: Error) => e.message,
      );
      expect(refused).toMatch(/eci: refusing the bus at nats:\/\/127\.0\.0\.1:\d+: no credentials \(ECI_NATS_CREDS, or ECI_NATS_USER and ECI_NATS_PASSWORD\); set ECI_NATS_ALLOW_INSECURE=1 to run on it anyway/);
      const allowed = await startManager({ dir: join(dir, 'm-allowed'), env: { ECI_NATS_URL: url, ECI_NATS_ALLOW_INSECURE: '1' } });
      expect((await allowed.ps()).containers).toEqual([]);
      await allowed.destroy();
    } finally {
      nats.kill('SIGTERM');
      await new Promise((r) => nats.once('exit', r));
    }
  });
});
