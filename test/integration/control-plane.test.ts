// eci's own machinery as a local attacker meets it (issue: a control plane only root can steer):
// a second manager on the same dirs, a host user whose subordinate ids overlap eci's pool, and the
// per-container run dirs. The attacker is an unprivileged host user created (and removed) here.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REPO, startManager, type TestManager } from '../helpers/manager.ts';
import { eciRunc, makeBundle } from '../helpers/bundle.ts';

const root = process.getuid?.() === 0;
const hasUseradd = spawnSync('sh', ['-c', 'command -v useradd && command -v runuser'], { encoding: 'utf8' }).status === 0;
const skip = !root ? 'needs root' : !hasUseradd ? 'needs useradd and runuser' : '';

/** A pool of this suite's own, far from the default one, so that concurrent suites never see the overlap made here. */
const POOL_BASE = 1_950_000_000;
const poolEnv = { ECI_UID_BASE: String(POOL_BASE), ECI_UID_COUNT: '2' };

/** The daemon's exit status and output, for a start that must fail. */
function daemonOnce(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(REPO, 'bin/eci'), 'daemon'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('exit', (code) => { clearTimeout(t); resolve({ code, out }); });
  });
}

function dropLines(file: string, match: (l: string) => boolean): void {
  try {
    writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((l) => !match(l)).join('\n'));
  } catch { /* no such file */ }
}

describe.skipIf(!!skip)(`eci's control plane against a local user${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const user = `ecit${process.pid % 100000}`;
  let m: TestManager | undefined;
  const asUser = (cmd: string) => spawnSync('runuser', ['-u', user, '--', 'sh', '-c', cmd], { encoding: 'utf8' });

  beforeAll(() => {
    spawnSync('userdel', ['-r', user]);
    const r = spawnSync('useradd', ['-M', '-s', '/bin/sh', user], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`useradd ${user}: ${r.stderr}`);
  });
  afterAll(async () => {
    await m?.destroy();
    spawnSync('userdel', ['-r', user]);
    // The reservation this suite's pool left behind (a real manager keeps its own for good).
    for (const f of ['/etc/subuid', '/etc/subgid']) dropLines(f, (l) => l === `eci:${POOL_BASE}:131072`);
  });

  it('refuses to start while a user\'s subordinate ids overlap its pool, naming the user; records the pool once they do not', async () => {
    const over = `${POOL_BASE + 65536}-${POOL_BASE + 65536 + 99}`;
    expect(spawnSync('usermod', ['--add-subuids', over, user], { encoding: 'utf8' }).status).toBe(0);
    const dir = mkdtempSync('/tmp/ecic-');
    chmodSync(dir, 0o711); // the run dir's parents must be searchable (checked before the pool)
    try {
      const r = await daemonOnce({ ECI_STATE_DIR: join(dir, 'state'), ECI_RUN_DIR: join(dir, 'run'), ECI_NATS_PORT: String(await freePort()), ...poolEnv });
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(new RegExp(`^eci: /etc/subuid line \\d+ gives ${user} uids ${POOL_BASE + 65536}\\.\\.${POOL_BASE + 65536 + 99}, which overlap eci's id pool ${POOL_BASE}\\.\\.${POOL_BASE + 131071}`, 'm'));
      expect(readFileSync('/etc/subuid', 'utf8')).not.toContain(`eci:${POOL_BASE}:`); // nothing recorded on a refusal
    } finally {
      rmSync(dir, { recursive: true, force: true });
      spawnSync('usermod', ['--del-subuids', over, user]);
    }
    m = await startManager({ env: poolEnv });
    for (const f of ['/etc/subuid', '/etc/subgid']) {
      expect(readFileSync(f, 'utf8').split('\n').filter((l) => l === `eci:${POOL_BASE}:131072`)).toHaveLength(1);
    }
    // useradd skips listed ranges: the pool cannot be handed to a new user.
    const parse = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith(`${user}:`)).map((l) => l.split(':').map(Number));
    for (const [, start, count] of parse('/etc/subuid')) expect(start + count <= POOL_BASE || start >= POOL_BASE + 131072).toBe(true);
  });

  it('refuses a second manager on the same dirs with one line naming the first, and takes over the lock of a killed one', async () => {
    m ??= await startManager({ env: poolEnv });
    const r = await daemonOnce(m.env);
    expect(r.code).not.toBe(0);
    expect(r.out.trim()).toBe(`eci: another manager (pid ${m.pid()}) is running on ${m.env.ECI_STATE_DIR}`);
    expect((await m.ps()).containers).toEqual([]); // the first one still answers
    await m.kill9();
    await m.restart(); // a crash's stale lock is taken over
    expect(typeof (await m.ps()).ranges).toBe('object');
  });

  it('gives each container a 0700 run dir owned by its root: a local user cannot enter it, even holding the lock and socket paths', async () => {
    m ??= await startManager({ env: poolEnv });
    const dir = mkdtempSync('/tmp/ecic-b-');
    chmodSync(dir, 0o755);
    const b = await makeBundle(join(dir, 'b'), ['sleep', '30']);
    const id = 'cp1';
    const runcRoot = join(dir, 'runc');
    try {
      const c = await eciRunc(['--root', runcRoot, 'create', '--bundle', b, id], { ECI_SOCKET: m.socket });
      expect(c.code, c.stderr).toBe(0);
      const cdir = join(m.env.ECI_RUN_DIR, 'containers', id);
      const st = statSync(cdir);
      expect((st.mode & 0o777).toString(8)).toBe('700');
      expect(st.uid).toBe(POOL_BASE); // the container's root, which no host user can become
      const ls = asUser(`ls ${cdir}/rootfs`);
      expect(ls.status).not.toBe(0);
      expect(ls.stderr).toMatch(/Permission denied/);
      // The state dir (records, credentials, outbox) is root's alone.
      expect(asUser(`ls ${m.env.ECI_STATE_DIR}`).stderr).toMatch(/Permission denied/);
      // The control socket is root's alone too, whatever umask the manager had: a user cannot even ask for ps.
      expect((statSync(m.socket).mode & 0o777).toString(8)).toBe('600');
      const ps = spawnSync('runuser', ['-u', user, '--', process.execPath, '-e',
        `require('net').connect(${JSON.stringify(m.socket)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(1)})`], { encoding: 'utf8' });
      expect(ps.stdout.trim()).toBe('EACCES');
      // Nor can the user start it through the launcher (its start takes runc's exec fifo itself only on
      // the manager's word; without the manager it is plain runc, run as the user): it stays created.
      const launcher = join(REPO, 'bin', 'eci-runc');
      const st2 = asUser(`ECI_SOCKET=${m.socket} ${launcher} --root ${runcRoot} start ${id}`);
      expect(st2.status).not.toBe(0);
      expect(st2.stderr).toMatch(/permission denied/i); // runc, as the user, cannot read its root
      const state = JSON.parse((await eciRunc(['--root', runcRoot, 'state', id], { ECI_SOCKET: m.socket })).stdout);
      expect(state.status).toBe('created');
      expect(existsSync(join(runcRoot, id, 'exec.fifo'))).toBe(true);
    } finally {
      await eciRunc(['--root', runcRoot, 'delete', '--force', id], { ECI_SOCKET: m.socket });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
