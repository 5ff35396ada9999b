// `eci run` and `eci image` with no engine, against a private manager (real runc, FUSE, NATS):
// images from a rootfs tarball and from an OCI layout (made here, with whiteouts and an image
// config), the container's exclusive range, the same refusals as through Docker, volumes, exit
// codes and signals, a real terminal driven through a pty, `eci check --engine eci`, and nothing
// left behind (bundle, mounts, range) after each run or failed import.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxRootfs, makeBusyboxTarball } from '../helpers/busybox.ts';
import { FIRST, REPO, startManager, type TestManager } from '../helpers/manager.ts';
import { runCmd, type RunResult } from '../helpers/run.ts';
import { hostNamespacesMessage, hostNetworkMessage } from '../../actors/runc/spec.ts';

const root = process.getuid?.() === 0;
const ECI = join(REPO, 'bin/eci');
const norm = (s: string) => s.trim().split(/\s+/).join(' ');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!root)(`eci run and eci image${root ? '' : ' (skipped: needs root)'}`, () => {
  let m: TestManager;
  let dir: string;
  const eci = (args: string[], o: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> =>
    runCmd(ECI, args, { ...process.env, ...m.env, ...o.env }, o.input, o.timeoutMs ?? 60_000);
  const images = () => join(m.dir, 'state', 'images');
  const storeEntries = () => (existsSync(images()) ? readdirSync(images()) : []);
  /** What a run may leave: bundles, writable layers, runc state, mounts under them, ranges. */
  const leftovers = async () => {
    const ls = (d: string) => (existsSync(d) ? readdirSync(d) : []);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
      .filter((p) => p.startsWith(join(m.dir, 'run', 'standalone')) || p.startsWith(join(m.dir, 'run', 'containers')) || p.startsWith(join(m.dir, 'state')));
    return { bundles: ls(join(m.dir, 'run', 'standalone')), layers: ls(join(m.dir, 'state', 'containers')), runc: ls(join(m.dir, 'run', 'runc')), mounts, ranges: (await m.ps()).ranges };
  };
  const CLEAN = { bundles: [], layers: [], runc: [], mounts: [], ranges: {} };

  beforeAll(async () => {
    m = await startManager();
    dir = mkdtempSync('/tmp/ecirun-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    await m?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    // runc leaves the parent of the containers' cgroups (linux.cgroupsPath /eci-run/<id>); only an
    // empty one is removed (rmdir of a cgroup with children fails).
    for (const root of ['/sys/fs/cgroup', ...(existsSync('/sys/fs/cgroup/cgroup.controllers') ? [] : readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c)))]) {
      try { rmdirSync(join(root, 'eci-run')); } catch { /* absent or in use */ }
    }
  });
  afterEach(async () => {
    expect(await leftovers()).toEqual(CLEAN);
  });

  it('eci run --rm busybox (built in) prints its own range, and leaves nothing', async () => {
    const r = await eci(['run', '--rm', 'busybox', 'cat', '/proc/self/uid_map']);
    expect(r.code, r.stderr).toBe(0);
    expect(norm(r.stdout)).toMatch(/^0 \d+ 65536$/);
    expect(Number(norm(r.stdout).split(' ')[1])).toBeGreaterThanOrEqual(FIRST);
    // Concurrent runs: each its own exclusive range.
    const many = await Promise.all([1, 2, 3].map(() => eci(['run', 'busybox', 'sh', '-c', 'cat /proc/self/uid_map; sleep 0.5'])));
    const hosts = many.map((x) => norm(x.stdout).split(' ')[1]);
    expect(many.map((x) => x.code)).toEqual([0, 0, 0]);
    expect(new Set(hosts).size).toBe(3);
    const ls = await eci(['image', 'ls']);
    expect(ls.stdout).toMatch(/^busybox\s+latest\s+\S+MB\s.*builtin$/m);
    // Removed, it comes back on request (or on the next eci run busybox).
    expect((await eci(['image', 'rm', 'busybox'])).stdout).toBe('removed busybox:latest\n');
    expect((await eci(['image', 'ls'])).stdout).not.toMatch(/^busybox/m);
    expect((await eci(['image', 'import', '--busybox'])).stdout).toBe('busybox:latest\n');
    expect(readFileSync(join(images(), 'busybox', 'latest', 'rootfs', 'bin', 'busybox')).equals(readFileSync('/bin/busybox'))).toBe(true);
  });

  it('imports a rootfs tarball (plain and gzip), lists, runs and removes it', async () => {
    const tar = await makeBusyboxTarball(join(dir, 'bb.tar'));
    writeFileSync(join(dir, 'bb.tar.gz'), gzipSync(readFileSync(tar)));
    expect((await eci(['image', 'import', tar, 'bbtar:1'])).stdout.trim()).toBe('bbtar:1');
    const gz = await eci(['image', 'import', join(dir, 'bb.tar.gz')]);
    expect(gz.code, gz.stderr).toBe(0);
    expect(gz.stdout.trim()).toBe('bb:latest'); // the name defaults to the file's base name
    const ls = await eci(['image', 'ls', '--json']);
    expect((JSON.parse(ls.stdout) as { name: string; tag: string }[]).map((i) => `${i.name}:${i.tag}`)).toEqual(expect.arrayContaining(['bbtar:1', 'bb:latest']));
    // On disk the files keep the image's ids; in the container root owns them through the idmap.
    expect(statSync(join(images(), 'bbtar', '1', 'rootfs', 'bin', 'busybox')).uid).toBe(0);
    const run = await eci(['run', 'bbtar:1', 'sh', '-c', 'stat -c %u /bin/busybox; cat /proc/self/uid_map']);
    expect(run.code, run.stderr).toBe(0);
    expect(norm(run.stdout)).toMatch(/^0 0 \d+ 65536$/);

    const again = await eci(['image', 'import', tar, 'bbtar:1']);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe('eci: image bbtar:1 already exists (remove it first: eci image rm bbtar:1)');

    expect((await eci(['image', 'rm', 'bbtar:1', 'bb'])).code).toBe(0);
    expect((await eci(['image', 'ls'])).stdout).not.toMatch(/^bbtar|^bb\s/m);
    const gone = await eci(['image', 'rm', 'bbtar:1']);
    expect([gone.code, gone.stderr.trim()]).toEqual([1, 'eci: no such image: bbtar:1']);
  });

  it('draws a progress bar on a terminal only', async () => {
    const tar = await makeBusyboxTarball(join(dir, 'bbp.tar'));
    writeFileSync(join(dir, 'capture-tty.py'), [
      'import os, pty, sys',
      'pid, fd = pty.fork()',
      'if pid == 0: os.execvpe(sys.argv[1], sys.argv[1:], os.environ)',
      'out = b""',
      'while True:',
      '    try:',
      '        b = os.read(fd, 4096)',
      '    except OSError: break',
      '    if not b: break',
      '    out += b',
      'os.waitpid(pid, 0)',
      'sys.stdout.write(out.decode(errors="replace"))',
    ].join('\n'));
    const onTty = await runCmd('python3', [join(dir, 'capture-tty.py'), ECI, 'image', 'import', tar, 'bbtty'], { ...process.env, ...m.env }, undefined, 60_000);
    expect(onTty.stdout).toMatch(/\rimporting bbtty:latest \[#+\] \d+\.\d\/\d+\.\d MB 100%/);
    const piped = await eci(['image', 'import', tar, 'bbpipe']);
    expect([piped.code, piped.stdout, piped.stderr]).toEqual([0, 'bbpipe:latest\n', '']);
    expect((await eci(['image', 'rm', 'bbtty', 'bbpipe'])).code).toBe(0);
  });

  it('a failed import (truncated tarball) is one line and leaves no trace in the store', async () => {
    const tar = readFileSync(await makeBusyboxTarball(join(dir, 'bb2.tar')));
    writeFileSync(join(dir, 'broken.tar.gz'), gzipSync(tar).subarray(0, 40_000));
    const before = storeEntries();
    const r = await eci(['image', 'import', join(dir, 'broken.tar.gz'), 'broken']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^eci: .*broken\.tar\.gz: /);
    expect(storeEntries()).toEqual(before);
    // A file owned by an id no container range can carry: refused, as Docker's userns-remap does.
    const odd = join(dir, 'odd');
    mkdirSync(join(odd, 'etc'), { recursive: true });
    writeFileSync(join(odd, 'etc', 'f'), 'x');
    execFileSync('tar', ['--numeric-owner', '--owner=70000', '--group=0', '-C', odd, '-cf', join(dir, 'odd.tar'), '.']);
    const ids = await eci(['image', 'import', join(dir, 'odd.tar'), 'odd']);
    expect([ids.code, ids.stderr.trim()]).toEqual([1, `eci: ${join(dir, 'odd.tar')}: / is owned by 70000:0; eci images hold ids 0..65535 only`]);
    expect(storeEntries()).toEqual(before);
    const missing = await eci(['image', 'import', join(dir, 'nope.tar')]);
    expect([missing.code, missing.stderr.trim()]).toEqual([1, `eci: ${join(dir, 'nope.tar')}: no such file or directory`]);
  });

  it('imports an archive with padding after its end marker (tar exits before reading it all)', async () => {
    // tar stops at the end marker: the 4 MiB of zeros after it go to a closed pipe. That must not fail the import.
    const tar = readFileSync(await makeBusyboxTarball(join(dir, 'bb3.tar')));
    writeFileSync(join(dir, 'padded.tar'), Buffer.concat([tar, Buffer.alloc(4 << 20)]));
    const r = await eci(['image', 'import', join(dir, 'padded.tar'), 'padded']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const rm = await eci(['image', 'rm', 'padded']);
    expect(rm.code, rm.stderr).toBe(0);
  });

  /** An OCI image layout: layer 1 = busybox + /etc/a + /opt/d/{x,y}; layer 2 (gzip) whites out /etc/a and makes /opt/d opaque with z. */
  const makeLayout = async (name: string, corrupt = false) => {
    const work = join(dir, `${name}-work`);
    const l1 = join(work, 'l1');
    await makeBusyboxRootfs(l1);
    mkdirSync(join(l1, 'opt', 'd'), { recursive: true });
    writeFileSync(join(l1, 'etc', 'a'), 'from layer 1\n');
    writeFileSync(join(l1, 'opt', 'd', 'x'), 'x');
    writeFileSync(join(l1, 'opt', 'd', 'y'), 'y');
    const l2 = join(work, 'l2');
    mkdirSync(join(l2, 'etc'), { recursive: true });
    mkdirSync(join(l2, 'opt', 'd'), { recursive: true });
    writeFileSync(join(l2, 'etc', '.wh.a'), '');
    writeFileSync(join(l2, 'opt', 'd', '.wh..wh..opq'), '');
    writeFileSync(join(l2, 'opt', 'd', 'z'), 'z');
    writeFileSync(join(l2, 'etc', 'motd'), 'layer 2\n');
    const tarOf = (d: string) => execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', d, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
    const layer1 = tarOf(l1);
    const layer2 = gzipSync(tarOf(l2));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin', 'GREETING=hello from the config'], Cmd: ['sh', '-c', 'echo "$GREETING"; cat /etc/motd'], WorkingDir: '/opt' }, rootfs: { type: 'layers', diff_ids: [] } }));
    const layout = join(dir, name);
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    const blob = (b: Buffer) => { writeFileSync(join(layout, 'blobs', 'sha256', sha(b)), b); return `sha256:${sha(b)}`; };
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blob(config), size: config.length },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: blob(layer1), size: layer1.length },
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob(layer2), size: layer2.length },
      ],
    }));
    // A tampered blob: same name (digest), other content that still unpacks (the gzip header's mtime).
    if (corrupt) writeFileSync(join(layout, 'blobs', 'sha256', sha(layer2)), Buffer.from(layer2).fill(0x5a, 4, 5));
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: blob(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
    rmSync(work, { recursive: true, force: true });
    return layout;
  };

  it('imports an OCI layout: layers in order, whiteouts and opaque dirs applied, the image config used', async () => {
    const layout = await makeLayout('layout');
    const imp = await eci(['image', 'import', layout, 'ocitest:v1']);
    expect(imp.code, imp.stderr).toBe(0);
    const rootfs = join(images(), 'ocitest', 'v1', 'rootfs');
    expect(existsSync(join(rootfs, 'etc', 'a'))).toBe(false);
    expect(readdirSync(join(rootfs, 'opt', 'd'))).toEqual(['z']);
    expect(readdirSync(rootfs).some((n) => n.startsWith('.wh.'))).toBe(false);
    // No command given: the image's Cmd, Env and WorkingDir apply.
    const dflt = await eci(['run', 'ocitest:v1']);
    expect([dflt.code, dflt.stdout]).toEqual([0, 'hello from the config\nlayer 2\n']);
    const r = await eci(['run', 'ocitest:v1', 'sh', '-c', 'pwd; ls /opt/d; cat /etc/a || echo no-a']);
    expect(r.stdout).toBe('/opt\nz\nno-a\n');
    expect((await eci(['image', 'rm', 'ocitest:v1'])).code).toBe(0);
  });

  it('refuses an OCI layout whose layer does not match its digest, leaving nothing', async () => {
    const layout = await makeLayout('bad-layout', true);
    const before = storeEntries();
    const r = await eci(['image', 'import', layout, 'bad:v1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^eci: .*: content does not match its digest sha256:[0-9a-f]{64}$/);
    expect(storeEntries()).toEqual(before);
  });

  it('refuses host namespaces with the same message as through Docker (exit 125); --userns=host is ignored', async () => {
    for (const ns of ['pid', 'ipc', 'uts']) {
      const r = await eci(['run', `--${ns}=host`, 'busybox', 'true']);
      expect(r.code, ns).toBe(125);
      expect(r.stderr.trim()).toBe(`eci: ${hostNamespacesMessage([ns])}`);
    }
    const net = await eci(['run', '--network', 'host', 'busybox', 'true']);
    expect([net.code, net.stderr.trim()]).toEqual([125, `eci: ${hostNetworkMessage}`]);
    const u = await eci(['run', '--userns=host', 'busybox', 'cat', '/proc/self/uid_map']);
    expect(norm(u.stdout)).toMatch(/^0 [1-9]\d* 65536$/);
    // --network none (the default): loopback only.
    const lo = await eci(['run', 'busybox', 'ls', '/sys/class/net']);
    expect(norm(lo.stdout)).toBe('lo');
  });

  it('-v: a :ro volume cannot be remounted rw; a rw volume is written as uid 0 on disk; restricted paths refused', async () => {
    const vol = join(dir, 'vol');
    mkdirSync(vol, { mode: 0o755 });
    const ro = await eci(['run', '--cap-add', 'SYS_ADMIN', '-v', `${vol}:/mnt:ro`, 'busybox', 'sh', '-c', 'touch /mnt/a 2>&1; mount -o remount,rw /mnt 2>&1 && touch /mnt/w']);
    expect(ro.code).not.toBe(0);
    expect(ro.stdout).toMatch(/Read-only file system/);
    expect(ro.stdout).toMatch(/permission denied/);
    expect(readdirSync(vol)).toEqual([]);
    const rw = await eci(['run', '-v', `${vol}:/v`, 'busybox', 'sh', '-c', 'echo y > /v/f; stat -c %u /v/f']);
    expect([rw.code, rw.stdout.trim()]).toEqual([0, '0']);
    expect(statSync(join(vol, 'f')).uid).toBe(0);
    const restricted = await eci(['run', '-v', '/proc/sys:/x', 'busybox', 'true']);
    expect(restricted.code).toBe(125);
    expect(restricted.stderr).toMatch(/^eci: .*restricted host mount/m);
  });

  it('exit codes propagate: exit 7 -> 7, a missing command -> 127, flags reach the container', async () => {
    expect((await eci(['run', 'busybox', 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await eci(['run', 'busybox', 'no-such-command'])).code).toBe(127);
    // stdin reaches the container with -i only.
    expect((await eci(['run', '-i', 'busybox', 'cat'], { input: 'to stdin\n' })).stdout).toBe('to stdin\n');
    expect((await eci(['run', 'busybox', 'cat'], { input: 'to stdin\n' })).stdout).toBe('');
    const r = await eci(['run', '-e', 'FOO=bar', '-w', '/tmp', '--hostname', 'box', '--name', 'named-1', '-m', '64m', 'busybox', 'sh', '-c',
      'echo $FOO $(pwd) $(hostname) $(cat /etc/hostname); grep MemTotal /proc/meminfo; grep CapEff /proc/self/status']);
    expect(r.code, r.stderr).toBe(0);
    const [line1, mem, caps] = r.stdout.trim().split('\n');
    expect(line1).toBe('bar /tmp box box');
    expect(norm(mem)).toBe('MemTotal: 65536 kB'); // the cgroup limit, through eci's /proc emulation
    expect(caps).toMatch(/^CapEff:\s+00000000a80425fb$/); // Docker's default set
    const drop = await eci(['run', '--cap-drop', 'ALL', '--cap-add', 'chown', 'busybox', 'grep', 'CapEff', '/proc/self/status']);
    expect(norm(drop.stdout)).toBe('CapEff: 0000000000000001');
  });

  it("seccomp as Docker's: no nested user/net namespaces or setns unless CAP_SYS_ADMIN", async () => {
    const probe = 'unshare -U true 2>&1; echo u=$?; unshare -n true 2>&1; echo n=$?; nsenter -t 1 -U true 2>&1; echo s=$?';
    const r = await eci(['run', 'busybox', 'sh', '-c', probe]);
    expect(r.stdout).toMatch(/unshare\(0x10000000\): Operation not permitted\nu=1\n/);
    expect(r.stdout).toMatch(/\nn=1\n/);
    expect(r.stdout).toMatch(/Operation not permitted\ns=1\n$/);
    const admin = await eci(['run', '--cap-add', 'SYS_ADMIN', 'busybox', 'unshare', '-U', '-r', 'cat', '/proc/self/uid_map']);
    expect([admin.code, norm(admin.stdout)]).toEqual([0, '0 0 1']);
  });

  it('signals: SIGTERM to eci run reaches the container (exit 143); SIGKILL -> 137; a hangup kills it after a grace period; a killed eci run is swept', async () => {
    const start = (name: string, cmd: string) => {
      const p = spawn(ECI, ['run', '--name', name, 'busybox', 'sh', '-c', cmd], { env: { ...process.env, ...m.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (b: Buffer) => (out += b));
      const done = new Promise<number>((res) => p.on('close', (code) => res(code ?? -1)));
      return { p, out: () => out, done };
    };
    const waitFor = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(cond()).toBe(true);
    };
    const t = start('sig-term', 'trap "echo got TERM; exit 143" TERM; echo ready; while :; do sleep 0.1; done');
    await waitFor(() => t.out().includes('ready'));
    t.p.kill('SIGTERM');
    expect(await t.done).toBe(143);
    expect(t.out()).toContain('got TERM');

    const k = start('sig-kill', 'echo ready; exec sleep 100');
    const pidFile = join(m.dir, 'run', 'standalone', 'sig-kill', 'pid');
    await waitFor(() => k.out().includes('ready') && existsSync(pidFile));
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    expect(await k.done).toBe(137);

    // A hangup (the terminal closed) is forwarded; a container that ignores it is killed after 5 s.
    const h = start('sig-hup', 'trap "" HUP; echo ready; exec sleep 100');
    await waitFor(() => h.out().includes('ready'));
    const t0 = Date.now();
    h.p.kill('SIGHUP');
    expect(await h.done).toBe(137);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4500);

    // eci run itself killed with SIGKILL: the container runs on and is released by the manager when
    // it ends; the bundle and writable layer left behind are swept by the next eci run.
    const s = start('sig-stale', 'echo ready; sleep 1');
    await waitFor(() => s.out().includes('ready'));
    s.p.kill('SIGKILL');
    await s.done;
    await waitFor(() => !existsSync(join(m.dir, 'run', 'runc', 'sig-stale')));
    expect(existsSync(join(m.dir, 'run', 'standalone', 'sig-stale'))).toBe(true);
    for (let i = 0; i < 100 && Object.keys((await m.ps()).ranges).length; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await eci(['run', 'busybox', 'true'])).code).toBe(0);
    expect(existsSync(join(m.dir, 'run', 'standalone', 'sig-stale'))).toBe(false);
  });

  it("eci run's death counts as a hangup: a container still running is killed after the grace period and swept; node bin/eci run forwards signals too", async () => {
    const waitFor = async (cond: () => boolean, what: string) => {
      for (let i = 0; i < 600 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(cond(), `waited for ${what}`).toBe(true);
    };
    const env = { ...process.env, ...m.env };
    const orphan = spawn(ECI, ['run', '--name', 'orphan', 'busybox', 'sh', '-c', 'echo ready; exec sleep 1000'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    orphan.stdout!.on('data', (b: Buffer) => (out += b));
    const gone = new Promise<void>((res) => orphan.on('close', () => res()));
    await waitFor(() => out.includes('ready'), 'the container to print ready');
    orphan.kill('SIGKILL');
    await gone;
    await waitFor(() => !existsSync(join(m.dir, 'run', 'runc', 'orphan')), 'the manager to kill the container of a dead eci run');
    for (let i = 0; i < 100 && Object.keys((await m.ps()).ranges).length; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await eci(['run', 'busybox', 'true'])).code).toBe(0); // sweeps its bundle
    expect(existsSync(join(m.dir, 'run', 'standalone', 'orphan'))).toBe(false);

    // Deno and `node bin/eci run` run the same client as a child, forwarding signals to it.
    const viaNode = spawn(process.execPath, [ECI, 'run', 'busybox', 'sh', '-c', 'trap "exit 143" TERM; echo ready; while :; do sleep 0.1; done'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    let nodeOut = '';
    viaNode.stdout!.on('data', (b: Buffer) => (nodeOut += b));
    const status = new Promise<number>((res) => viaNode.on('close', (code) => res(code ?? -1)));
    await waitFor(() => nodeOut.includes('ready'), 'the container run through node bin/eci to print ready');
    viaNode.kill('SIGTERM');
    expect(await status).toBe(143);
  });

  it('-it: a real terminal (raw mode, the size, resize on SIGWINCH, Ctrl-C to the container), echo hi, exit status', async () => {
    // A python pty drives eci run as a user's terminal would.
    const driver = `
import os, pty, sys, time, fcntl, termios, struct, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
def size(r, c): fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', r, c, 0, 0))
size(30, 90)
out = b''
def until(s, t=20):
    global out
    end = time.time() + t
    while s not in out and time.time() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try: out += os.read(fd, 4096)
            except OSError: break
    if s not in out: os.kill(pid, 9); sys.stdout.write(out.decode(errors='replace')); sys.exit('timed out waiting for %r' % s)
until(b'# ')
os.write(fd, b'echo hi-$((6*7))\\r'); until(b'hi-42')
os.write(fd, b'stty size\\r'); until(b'30 90')
size(41, 123); time.sleep(0.3)
os.write(fd, b'stty size\\r'); until(b'41 123')
os.write(fd, b'sleep 30\\r'); time.sleep(0.5)
os.write(fd, b'\\x03'); time.sleep(0.3)
os.write(fd, b'echo slept=$?\\r'); until(b'slept=130')
os.write(fd, b'exit 5\\r')
while True:
    try:
        if not os.read(fd, 4096): break
    except OSError: break
_, st = os.waitpid(pid, 0)
print('STATUS', os.waitstatus_to_exitcode(st))
`;
    writeFileSync(join(dir, 'drive-tty.py'), driver);
    const r = await runCmd('python3', [join(dir, 'drive-tty.py'), ECI, 'run', '-it', 'busybox', 'sh'], { ...process.env, ...m.env }, undefined, 60_000);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('STATUS 5');
  });

  it('bad flags, an unknown image or no manager: one line, exit 125, nothing made', async () => {
    for (const [args, msg] of [
      [['run', '--bogus', 'busybox'], /^eci: unknown flag: --bogus$/],
      [['run', 'nosuch:tag', 'true'], /^eci: no such image: nosuch:tag /],
      [['run', '-v', 'vol:/x', 'busybox', 'true'], /^eci: invalid -v "vol:\/x": named volumes are not supported/],
      [['run', '--network', 'bridge', 'busybox', 'true'], /^eci: invalid --network "bridge"/],
      [['run', '--name', 'a.b', 'busybox', 'true'], /^eci: invalid container name "a.b"/],
      [['run', '-m', '1k', 'busybox', 'true'], /^eci: --memory 1k: the minimum is 6m$/],
      [['run'], /^eci: "eci run" requires at least 1 argument/],
    ] as [string[], RegExp][]) {
      const r = await eci(args);
      expect(r.code, args.join(' ')).toBe(125);
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(msg);
      expect(r.stdout).toBe('');
    }
    const down = await eci(['run', 'busybox', 'true'], { env: { ECI_SOCKET: join(dir, 'no.sock') } });
    expect(down.code).toBe(125);
    expect(down.stderr.trim()).toMatch(/^eci: the eci manager is not reachable at .*no\.sock: start it with `eci daemon`/);
  });

  it('eci check falls back to eci run when no Docker engine answers, and passes every property', async () => {
    const bogus = await eci(['check', '--engine', 'podman']);
    expect([bogus.code, bogus.stderr.trim()]).toEqual([1, 'eci: check: --engine must be docker or eci, not "podman"']);
    const r = await eci(['check', '--host', `unix://${join(dir, 'no-docker.sock')}`], { timeoutMs: 180_000 });
    expect(r.stderr.trim()).toBe('engine: eci run (no engine)');
    expect(r.stdout).toMatch(/^PROPERTY\s+EXPECTED\s+OBSERVED\s+PASS/);
    if (r.code !== 0) console.log(r.stdout, r.stderr); // the table names the failing property
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\n12 passed, 0 failed/);
  });
});
