// The manager killed with -9 at exact points of create and delete (the test-only hook
// ECI_TEST_PAUSE_AT=<point>:<id> parks it there). After a restart: no range double-allocated, no
// mount or run dir leaked, no helper process left, the interrupted container cleaned up with one
// final event, and the container that kept running still restored and holding its range.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, childrenOf, eciRunc, makeBundle, mountsUnder, until, type RunResult } from '../helpers/bundle.ts';
import { replay } from '../helpers/events.ts';
import { REPO, startManager, type TestManager } from '../helpers/manager.ts';

const root = process.getuid?.() === 0;

const cases: { point: string; verb: 'create' | 'delete'; mountedAtKill: boolean }[] = [
  { point: 'create.after-range', verb: 'create', mountedAtKill: false },
  { point: 'create.after-rootfs', verb: 'create', mountedAtKill: true },
  { point: 'delete.before-unmount', verb: 'delete', mountedAtKill: true },
  { point: 'delete.after-unmount', verb: 'delete', mountedAtKill: false },
];

const runcState = (runcRoot: string, id: string) => existsSync(join(runcRoot, id, 'state.json'));

describe.skipIf(!root)(`manager kill -9 during create and delete${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  const managers: TestManager[] = [];
  const runcRoots: string[] = [];

  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-crash-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    // A failed case must not leave its containers (and the fd-holder that keeps them vetted) behind.
    for (const r of runcRoots) for (const id of ['keep', 'next']) spawnSync('runc', ['--root', r, 'delete', '--force', id], { stdio: 'ignore' });
    await Promise.allSettled(managers.map((m) => m.destroy()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const c of cases) {
    it(`at ${c.point}: cleans up the victim, keeps the survivor, leaks nothing`, async () => {
      const tag = c.point.replace(/\W/g, '-');
      const victim = `v-${tag}`;
      const m = await startManager({ env: { ECI_TEST_PAUSE_AT: `${c.point}:${victim}` } });
      managers.push(m);
      const env = { ECI_SOCKET: m.socket };
      const runcRoot = join(dir, `runc-${tag}`);
      runcRoots.push(runcRoot);
      const containersDir = join(m.dir, 'run', 'containers');

      // The survivor runs across the crash.
      const bk = await makeBundle(join(dir, `keep-${tag}`), ['sleep', '1000']);
      expect((await eciRunc(['--root', runcRoot, 'create', '--bundle', bk, 'keep'], env)).code).toBe(0);
      expect((await eciRunc(['--root', runcRoot, 'start', 'keep'], env)).code).toBe(0);
      const keepUid = (await m.ps()).containers.find((x) => x.id === 'keep')!.uid!.hostID;

      const bv = await makeBundle(join(dir, `victim-${tag}`), ['sleep', '1000']);
      let launcher: Promise<RunResult>;
      if (c.verb === 'create') {
        launcher = eciRunc(['--root', runcRoot, 'create', '--bundle', bv, victim], env);
      } else {
        expect((await eciRunc(['--root', runcRoot, 'create', '--bundle', bv, victim], env)).code).toBe(0);
        expect((await eciRunc(['--root', runcRoot, 'start', victim], env)).code).toBe(0);
        expect((await eciRunc(['--root', runcRoot, 'kill', victim, 'KILL'], env)).code).toBe(0);
        await until(async () => JSON.parse((await eciRunc(['--root', runcRoot, 'state', victim], env)).stdout || '{}').status === 'stopped', 'victim stopped');
        launcher = eciRunc(['--root', runcRoot, 'delete', victim], env);
      }
      const marker = join(m.dir, 'state', 'paused-at');
      await until(() => existsSync(marker), `the manager to reach ${c.point}`);
      expect(readFileSync(marker, 'utf8').trim()).toBe(`${c.point} ${victim}`);
      expect(mountsUnder(join(containersDir, victim)).length > 0).toBe(c.mountedAtKill);
      const natsPid = Number(readFileSync(join(m.dir, 'state', 'nats.pid'), 'utf8'));
      // The fd-holder is meant to outlive the manager (it keeps the survivor vetted): not a leak.
      const holderPid = Number(readFileSync(join(m.dir, 'run', 'fdholder.pid'), 'utf8'));
      const helpers = childrenOf(m.pid()).filter((p) => p !== natsPid && p !== holderPid);

      await m.kill9();
      const r = await launcher;
      if (c.verb === 'create') {
        // The engine is told: one line, non-zero; runc never ran.
        expect(r.code).not.toBe(0);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/^eci: /);
        expect(runcState(runcRoot, victim)).toBe(false);
      }
      expect(runcState(runcRoot, victim)).toBe(false);

      await m.restart();
      const ps = await m.ps();
      expect(ps.containers.map((x) => [x.id, x.state])).toEqual([['keep', 'running']]);
      expect(Object.values(ps.ranges)).toEqual(['keep']);
      expect(mountsUnder(join(containersDir, victim))).toEqual([]);
      expect(existsSync(join(containersDir, victim))).toBe(false);
      expect(mountsUnder(join(containersDir, 'keep')).length).toBeGreaterThan(0);
      expect(helpers.length).toBeGreaterThan(0); // at least eci-helper serve
      await until(() => !helpers.some(alive), 'the old helpers to exit', 5000);

      // The victim's story ends exactly once; the survivor's range is not handed out again.
      const events = await until(async () => {
        const ev = await replay(m.natsUrl, `eci.v1.evt.container.${victim}.>`);
        return ev.some((e) => e.event.type === 'container.failed' || e.event.type === 'container.stopped') ? ev : undefined;
      }, 'the final event of the victim');
      const types = events.map((e) => e.event.type);
      expect(types.filter((t) => t === 'container.failed' || t === 'container.stopped')).toHaveLength(1);
      expect(types.at(-1)).toBe(c.verb === 'create' ? 'container.failed' : 'container.stopped');
      expect(new Set(types).size).toBe(types.length);

      const bn = await makeBundle(join(dir, `next-${tag}`), ['cat', '/proc/self/uid_map']);
      const n = await eciRunc(['--root', runcRoot, 'run', '--bundle', bn, 'next'], env);
      expect(n.code, n.stderr).toBe(0);
      const nextUid = Number(n.stdout.trim().split(/\s+/)[1]);
      expect(nextUid).not.toBe(keepUid);

      expect((await eciRunc(['--root', runcRoot, 'kill', 'keep', 'KILL'], env)).code).toBe(0);
      await until(async () => JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'keep'], env)).stdout || '{}').status === 'stopped', 'keep stopped');
      expect((await eciRunc(['--root', runcRoot, 'delete', 'keep'], env)).code).toBe(0);
      await until(async () => (await m.ps()).containers.length === 0, 'all containers gone');
      expect((await m.ps()).ranges).toEqual({});
      expect(mountsUnder(containersDir)).toEqual([]);
    });
  }
});

// `eci run` runs its container as a child of its own client (native/cmd/eci-run.c), not of the
// manager: a manager that dies mid-run leaves the container and eci run going; eci run ends with the
// container's status, and the bundle it could not have removed is swept by the next eci run.
describe.skipIf(!root)(`eci run while its manager is killed${root ? '' : ' (skipped: needs root)'}`, () => {
  const managers: TestManager[] = [];
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-crash-run-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    for (const m of managers) for (const id of ['crash-run', 'crash-hup']) spawnSync('runc', ['--root', join(m.dir, 'run', 'runc'), 'delete', '--force', id], { stdio: 'ignore' });
    await Promise.allSettled(managers.map((m) => m.destroy()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('the container and eci run go on; its status is the container\'s; the next eci run sweeps the bundle', async () => {
    const mgr = await startManager();
    managers.push(mgr);
    const env = { ...process.env, ...mgr.env };
    const w = join(dir, 'w');
    mkdirSync(w, { mode: 0o777 });
    const p = spawn(join(REPO, 'bin/eci'), ['run', '--name', 'crash-run', '-v', `${w}:/w`, 'busybox', 'sh', '-c', 'echo ready; until [ -e /w/go ]; do sleep 0.1; done; exit 3'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (b: Buffer) => (out += b));
    const done = new Promise<number>((res) => p.on('close', (code) => res(code ?? -1)));
    await until(() => out.includes('ready'), 'the container to print ready', 30_000);
    await mgr.kill9();
    await mgr.restart();
    expect(p.exitCode).toBe(null); // eci run still waits for its container
    writeFileSync(join(w, 'go'), '');
    expect(await done).toBe(3);
    const bundle = join(mgr.dir, 'run', 'standalone', 'crash-run');
    expect(existsSync(bundle)).toBe(true);
    const next = spawnSync(join(REPO, 'bin/eci'), ['run', 'busybox', 'true'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(next.status, next.stderr).toBe(0);
    expect(existsSync(bundle)).toBe(false);
    expect(existsSync(join(mgr.dir, 'state', 'containers', 'crash-run'))).toBe(false);
    expect(mountsUnder(join(mgr.dir, 'run', 'standalone'))).toEqual([]);
    // Its runc run reported the exit to the dead manager: the new one's reconcile pass (every 30 s) releases it.
    await until(async () => Object.keys((await mgr.ps()).ranges).length === 0 || undefined, 'the ranges to be released', 90_000);
    expect(mountsUnder(join(mgr.dir, 'run', 'containers'))).toEqual([]);
  }, 180_000);

  it('a hangup while no manager is connected: eci run itself kills the container after the grace period', async () => {
    const mgr = await startManager();
    managers.push(mgr);
    const p = spawn(join(REPO, 'bin/eci'), ['run', '--name', 'crash-hup', 'busybox', 'sh', '-c', 'trap "" HUP; echo ready; exec sleep 1000'], { env: { ...process.env, ...mgr.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (b: Buffer) => (out += b));
    const done = new Promise<number>((res) => p.on('close', (code) => res(code ?? -1)));
    await until(() => out.includes('ready'), 'the container to print ready', 30_000);
    await mgr.kill9();
    p.kill('SIGHUP');
    expect(await done).toBe(137);
    await mgr.restart();
    const next = spawnSync(join(REPO, 'bin/eci'), ['run', 'busybox', 'true'], { env: { ...process.env, ...mgr.env }, encoding: 'utf8', timeout: 60_000 });
    expect(next.status, next.stderr).toBe(0);
    expect(existsSync(join(mgr.dir, 'run', 'standalone', 'crash-hup'))).toBe(false);
  });
});
