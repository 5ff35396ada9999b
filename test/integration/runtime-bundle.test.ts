// bin/eci-runc driven directly, as containerd/Podman would: bundles on a plain directory rootfs,
// bad input that must leave nothing behind, and failing closed without the manager.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIRST, startManager, type TestManager } from '../helpers/manager.ts';
import { ECI_RUNC, eciRunc as runEciRunc, makeBundle } from '../helpers/bundle.ts';
import { spawnSync } from 'node:child_process';

const root = process.getuid?.() === 0;
const norm = (s: string) => s.trim().split(/\s+/).join(' ');
// Mounts under this suite's own dirs only: other suites (or a benchmark) may hold theirs meanwhile,
// and the manager's /proc FUSE server stays mounted under its run dir for as long as it runs.
const ownMounts = (...dirs: string[]) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => dirs.some((d) => l.split(' ')[4]?.startsWith(d))).length;

const eciRunc = (args: string[], o: { env?: Record<string, string>; cwd?: string; extraFd?: number } = {}) => runEciRunc(args, o.env ?? {}, o);

describe.skipIf(!root)(`eci-runc with OCI bundles${root ? '' : ' (skipped: needs root)'}`, () => {
  let m: TestManager;
  let dir: string;
  let env: Record<string, string>;
  let runcRoot: string;
  let baseline: number;

  const bundle = (name: string, args: string[], patch: (c: Record<string, any>) => void = () => {}) => makeBundle(join(dir, name), args, patch);

  beforeAll(async () => {
    m = await startManager();
    dir = mkdtempSync('/tmp/ecib-');
    chmodSync(dir, 0o755);
    runcRoot = join(dir, 'runc');
    env = { ECI_SOCKET: m.socket };
    baseline = 0;
  });
  afterAll(async () => {
    await m?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a bundle in its own range, writes land in the rootfs dir as uid 0, and cleans up', async () => {
    const b = await bundle('ok', ['sh', '-c', 'cat /proc/self/uid_map; echo x > /etc/new; stat -c %u /etc/new']);
    const before = readFileSync(join(b, 'config.json'), 'utf8');
    const r = await eciRunc(['--root', runcRoot, 'run', '--bundle', b, 'ok1'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(norm(r.stdout)).toBe(`0 ${FIRST} 65536 0`);
    expect(readFileSync(join(b, 'rootfs/etc/new'), 'utf8')).toBe('x\n');
    expect((await import('node:fs')).statSync(join(b, 'rootfs/etc/new')).uid).toBe(0);
    expect(readFileSync(join(b, 'config.json'), 'utf8')).toBe(before); // the bundle is given back as it was
    expect((await m.ps()).ranges).toEqual({});
    expect(ownMounts(dir, join(m.dir, 'run', 'containers'))).toBe(baseline);
  });

  it('create / start / state / delete with --pid-file, and --preserve-fds passes fds through', async () => {
    const b = await bundle('life', ['sh', '-c', 'cat <&3 > /fd3.out; sleep 30']);
    const before = readFileSync(join(b, 'config.json'), 'utf8');
    const fdFile = join(dir, 'fd3');
    writeFileSync(fdFile, 'from-fd-3\n');
    const fd = openSync(fdFile, 'r');
    const pidFile = join(dir, 'life.pid');
    try {
      const c = await eciRunc(['--root', runcRoot, 'create', '--bundle', b, '--pid-file', pidFile, '--preserve-fds', '1', 'life1'], { env, extraFd: fd });
      expect(c.code, c.stderr).toBe(0);
    } finally {
      closeSync(fd);
    }
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(pid).toBeGreaterThan(0);
    expect((await m.ps()).containers.map((x) => [x.id, x.state, x.uid?.hostID])).toEqual([['life1', 'mounted', FIRST]]);
    expect((await eciRunc(['--root', runcRoot, 'start', 'life1'], { env })).code).toBe(0);
    const st = JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'life1'], { env })).stdout);
    expect(st).toMatchObject({ id: 'life1', status: 'running', pid });
    // start's report reaches the manager after the launcher exits (no answer awaited): wait up to 5 s for running.
    for (let i = 0; i < 100 && (await m.ps()).containers[0]?.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await m.ps()).containers.map((x) => x.state)).toEqual(['running']);
    for (let i = 0; i < 50 && !existsSync(join(b, 'rootfs/fd3.out')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(join(b, 'rootfs/fd3.out'), 'utf8')).toBe('from-fd-3\n');
    expect((await eciRunc(['--root', runcRoot, 'kill', 'life1', 'KILL'], { env })).code).toBe(0);
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    const del = await eciRunc(['--root', runcRoot, 'delete', 'life1'], { env });
    expect(del.code, del.stderr).toBe(0);
    expect(readFileSync(join(b, 'config.json'), 'utf8')).toBe(before); // runc never changes a bundle: given back at delete
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
    expect(ownMounts(dir, join(m.dir, 'run', 'containers'))).toBe(baseline);
  });

  it("start does runc start's work in the launcher (runc's exec fifo), and leaves every other case to runc", async () => {
    const trace = join(dir, 'start.trace');
    const e = { ...env, ECI_LAUNCHER_TRACE: trace };
    const b = await bundle('fifo', ['sh', '-c', 'echo started > /started; sleep 30']);
    const c1 = await eciRunc(['--root', runcRoot, 'create', '--bundle', b, 'fifo1'], { env: e });
    expect(c1.code, c1.stderr).toBe(0);
    const fifo = join(runcRoot, 'fifo1', 'exec.fifo');
    expect(existsSync(fifo)).toBe(true);
    const s1 = await eciRunc(['--root', runcRoot, 'start', 'fifo1'], { env: e });
    expect([s1.code, s1.stderr]).toEqual([0, '']);
    // No runc was started for it: the trace line of the start has no spawn, and the fifo is gone as after runc start.
    const line = readFileSync(trace, 'utf8').trim().split('\n').find((l) => l.startsWith('start '));
    expect(line).toMatch(/ spawned=0 .* fifo$/);
    expect(existsSync(fifo)).toBe(false);
    for (let i = 0; i < 50 && !existsSync(join(b, 'rootfs/started')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(join(b, 'rootfs/started'), 'utf8')).toBe('started\n');
    expect(JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'fifo1'], { env })).stdout)).toMatchObject({ status: 'running' });
    // A second start is runc's to answer, with runc's words.
    const s2 = await eciRunc(['--root', runcRoot, 'start', 'fifo1'], { env });
    expect(s2.code).toBe(1);
    expect(s2.stderr).toContain('cannot start an already running container');

    // An init that died before its start: runc says so, as it would without eci.
    const b2 = await bundle('fifo-dead', ['sleep', '30']);
    const c2 = await eciRunc(['--root', runcRoot, 'create', '--bundle', b2, 'fifo2'], { env });
    expect(c2.code, c2.stderr).toBe(0);
    const pid2 = JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'fifo2'], { env })).stdout).pid as number;
    process.kill(pid2, 'SIGKILL');
    for (let i = 0; i < 50 && existsSync(`/proc/${pid2}`); i++) await new Promise((r) => setTimeout(r, 50));
    const s3 = await eciRunc(['--root', runcRoot, 'start', 'fifo2'], { env });
    expect(s3.code).toBe(1);
    expect(s3.stderr).toContain('cannot start a container that has stopped');
    for (const id of ['fifo1', 'fifo2']) expect((await eciRunc(['--root', runcRoot, 'delete', '--force', id], { env })).code).toBe(0);
    for (let i = 0; i < 100 && (await m.ps()).containers.length; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await m.ps()).ranges).toEqual({});
  });

  it('a poststop hook still finds the rootfs: with one, eci releases after runc delete, not beside it', async () => {
    const seen = join(dir, 'poststop.seen');
    const rootfs = join(m.dir, 'run', 'containers', 'hook1', 'rootfs');
    const b = await bundle('hook', ['true'], (c) => {
      c.hooks = { poststop: [{ path: '/bin/sh', args: ['sh', '-c', `test -e ${rootfs}/bin/sh && echo present > ${seen} || echo gone > ${seen}`] }] };
    });
    // As an engine's shim does: a subreaper reaps the container's init once `true` ends, so no process of
    // it is left at delete (the case in which, without a hook, eci releases beside runc delete).
    const driver = [
      'import ctypes, os, subprocess, sys',
      'ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER',
      'run = lambda *a: subprocess.run([sys.argv[1], "--root", sys.argv[2], *a], check=True, stdout=subprocess.DEVNULL)',
      'run("create", "--bundle", sys.argv[3], "hook1"); run("start", "hook1")',
      'os.waitpid(-1, 0)  # the container init (runc itself was waited for by subprocess)',
      'run("delete", "hook1")',
    ].join('\n');
    const r = spawnSync('python3', ['-c', driver, ECI_RUNC, runcRoot, b], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(seen, 'utf8')).toBe('present\n');
    expect((await m.ps()).ranges).toEqual({});
    expect(ownMounts(dir, join(m.dir, 'run', 'containers'))).toBe(baseline);
  });

  it('re-creates a container under the same id straight after its delete (as an engine restarting it does)', async () => {
    // `delete` is answered once eci's mounts are down; the range, run dir and records follow. A create
    // of the same id that arrives meanwhile must wait for that, not fail or lose its new run dir. A driver
    // issues each create the moment its delete returns (an engine's restart is as quick).
    const b = await bundle('again', ['sleep', '30']);
    const driver = [
      'import os, subprocess, sys',
      'eci, root, bundle, run = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]',
      'spec = open(bundle + "/config.json").read()',
      'def same_bundle(i):',
      '    if open(bundle + "/config.json").read() != spec: sys.exit("delete %d: the bundle\'s config.json was not given back" % i)',
      'import tempfile',
      'def call(*a):',
      '    # stderr to a file: the container inherits it, so a pipe would stay open for its whole life',
      '    with tempfile.TemporaryFile("w+") as err:',
      '        r = subprocess.run([eci, "--root", root, *a], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)',
      '        err.seek(0)',
      '        if r.returncode: sys.exit(a[0] + ": " + err.read().strip())',
      'for i in range(10):',
      '    call("create", "--bundle", bundle, "again1")',
      '    if not os.path.isdir(run + "/again1/rootfs/bin"): sys.exit("create %d: no rootfs in the run dir" % i)',
      '    call("delete", "--force", "again1")',
      '    same_bundle(i)',
    ].join('\n');
    const r = spawnSync('python3', ['-c', driver, ECI_RUNC, runcRoot, b, join(m.dir, 'run', 'containers')], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
    expect(existsSync(join(m.dir, 'run', 'containers', 'again1'))).toBe(false);
    expect(ownMounts(dir, join(m.dir, 'run', 'containers'))).toBe(baseline);
  });

  it('a delete of the id whose create is under way (a dead shim\'s clean-up racing a restart) leaves the new container alone', async () => {
    // containerd cleans up a dead shim with `runc delete --force ID` at its own pace; an engine restarting
    // the container under the same id may be creating it again by then. runc there has nothing to delete
    // yet, so eci must not take the new container's mounts and range either. A manager of its own whose
    // runc waits 1.5 s before each create.
    const slow = join(dir, 'slow-runc');
    writeFileSync(slow, '#!/bin/sh\nfor a; do [ "$a" = create ] && sleep 1.5; done\nexec runc "$@"\n');
    chmodSync(slow, 0o755);
    const ms = await startManager({ env: { ECI_RUNC: slow } });
    try {
      const e = { ECI_SOCKET: ms.socket };
      const b = await bundle('race', ['sleep', '30']);
      const created = eciRunc(['--root', runcRoot, 'create', '--bundle', b, 'race1'], { env: e });
      for (let i = 0; i < 100 && (await ms.ps()).containers[0]?.state !== 'mounted'; i++) await new Promise((r) => setTimeout(r, 20));
      expect((await ms.ps()).containers.map((x) => [x.id, x.state])).toEqual([['race1', 'mounted']]);
      const del = await eciRunc(['--root', runcRoot, 'delete', '--force', 'race1'], { env: e });
      expect(del.code, del.stderr).toBe(0); // runc: no such container yet
      const c = await created;
      expect(c.code, c.stderr).toBe(0);
      expect((await ms.ps()).containers.map((x) => [x.id, x.state])).toEqual([['race1', 'mounted']]);
      expect(existsSync(join(ms.dir, 'run', 'containers', 'race1', 'rootfs', 'bin'))).toBe(true);
      expect((await eciRunc(['--root', runcRoot, 'start', 'race1'], { env: e })).code).toBe(0);
      const st = JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'race1'], { env: e })).stdout);
      expect(st).toMatchObject({ id: 'race1', status: 'running' });
      const gone = await eciRunc(['--root', runcRoot, 'delete', '--force', 'race1'], { env: e });
      expect(gone.code, gone.stderr).toBe(0);
      expect((await ms.ps()).containers).toEqual([]);
      expect((await ms.ps()).ranges).toEqual({});
      expect(ownMounts(dir, join(ms.dir, 'run', 'containers'))).toBe(baseline);
    } finally {
      await ms.destroy();
    }
  });

  it('answers a malformed config.json with one line naming the problem, and holds nothing', async () => {
    const b = await bundle('bad', ['true']);
    writeFileSync(join(b, 'config.json'), '{"root": {"path": "rootfs"}, "linux": ');
    const log = join(dir, 'bad-log.json');
    const r = await eciRunc(['--root', runcRoot, '--log', log, '--log-format', 'json', 'create', '--bundle', b, 'bad1'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^eci: .*bad\/config.json: not valid JSON/);
    expect(JSON.parse(readFileSync(log, 'utf8').trim().split('\n').at(-1)!)).toMatchObject({ level: 'error', msg: expect.stringContaining('not valid JSON') });
    expect((await m.ps()).ranges).toEqual({});
    expect(existsSync(join(runcRoot, 'bad1'))).toBe(false);
  });

  it('refuses a missing bundle, a missing rootfs and a bad id, one line each, holding nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['create', '--bundle', join(dir, 'nope'), 'x1'], /^eci: bundle .*nope: cannot read config.json \(ENOENT\)$/],
      [['create', '--bundle', await bundle('noroot', ['true'], (c) => { c.root.path = 'missing'; }), 'x2'], /^eci: rootfs .*missing: ENOENT$/],
      [['create', '--bundle', dir, 'bad.id'], /^eci: invalid container id "bad.id"/],
      [['create', '--bundle', await bundle('hostpid', ['true'], (c) => { c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid'); }), 'x3'],
        /^eci: eci containers can't share namespaces \[pid\] with the host/],
    ];
    for (const [args, re] of cases) {
      const r = await eciRunc(['--root', runcRoot, ...args], { env });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim()).toMatch(re);
    }
    expect((await m.ps()).ranges).toEqual({});
    expect(ownMounts(dir, join(m.dir, 'run', 'containers'))).toBe(baseline);
  });

  it('a spec step refusing after the range was taken names itself and gives back the range and mounts', async () => {
    const b = await bundle('badsysctl', ['true'], (c) => { c.linux.sysctl = { 'net.ipv4.ping_group_range': 'x' }; });
    const before = readFileSync(join(b, 'config.json'), 'utf8');
    const r = await eciRunc(['--root', runcRoot, 'create', '--bundle', b, 'sy1'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('eci: linux.sysctl["net.ipv4.ping_group_range"]: expected two integers, got "x" (step id-sysctls)');
    expect(readFileSync(join(b, 'config.json'), 'utf8')).toBe(before);
    expect(existsSync(join(runcRoot, 'sy1'))).toBe(false);
    // Released: the range is free again and eci's mounts for it are gone (the actor releases before the answer).
    expect((await m.ps()).ranges).toEqual({});
    expect(ownMounts(dir, join(m.dir, 'run', 'containers'))).toBe(baseline);
  });

  it('fails closed when the manager is unreachable, but state/delete still reach runc', async () => {
    const b = await bundle('closed', ['true']);
    const log = join(dir, 'closed-log.json');
    const r = await eciRunc(['--root', runcRoot, '--log', log, '--log-format', 'json', 'create', '--bundle', b, 'closed1'], { env: { ECI_SOCKET: join(dir, 'no.sock') } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^eci: the eci manager is not reachable at .*no.sock .*refusing to create a container without isolation/);
    expect(readFileSync(log, 'utf8')).toContain('"level":"error"');
    expect(existsSync(join(runcRoot, 'closed1'))).toBe(false);
    const st = await eciRunc(['--root', runcRoot, 'state', 'closed1'], { env: { ECI_SOCKET: join(dir, 'no.sock') } });
    expect(st.stderr).toMatch(/does not exist/); // runc itself answered
  });

  it('turns an exhausted allocator into a clear error, and frees on delete', async () => {
    const small = await startManager({ env: { ECI_UID_COUNT: '1', ECI_UID_BASE: '300000' } });
    try {
      const e = { ECI_SOCKET: small.socket };
      const b1 = await bundle('ex1', ['sleep', '30']);
      const b2 = await bundle('ex2', ['true']);
      expect((await eciRunc(['--root', runcRoot, 'create', '--bundle', b1, 'ex1'], { env: e })).code).toBe(0);
      const r = await eciRunc(['--root', runcRoot, 'create', '--bundle', b2, 'ex2'], { env: e });
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe('eci: cannot create container ex2: no free uid/gid range: all 1 ranges of 65536 ids from 300000 are in use');
      expect((await eciRunc(['--root', runcRoot, 'delete', '-f', 'ex1'], { env: e })).code).toBe(0);
      expect((await small.ps()).ranges).toEqual({});
      const again = await eciRunc(['--root', runcRoot, 'run', '--bundle', b2, 'ex2'], { env: e });
      expect(again.code, again.stderr).toBe(0);
    } finally {
      await small.destroy();
    }
  });

  it('--version names eci and runc', async () => {
    const r = await eciRunc(['--version']);
    expect(r.stdout).toMatch(/^eci-runc version \d+\.\d+\.\d+\nrunc version/);
  });
});
