// The host view of an overlay rootfs (native/cmd/eci-hostview.c on the engine's path) is mounted beside
// `runc create`: a create whose view fails ends like a failed runc create (runc's container deleted, the
// bundle given back, nothing mounted or held, one line, non-zero), and a manager killed while the view
// was mounted but not yet recorded leaves nothing that the restarted manager's delete does not take down;
// one killed before the view was mounted has it mounted by the restarted manager (from the record).
// The rootfs is an overlay mounted here the way Docker's overlay2 does (<home>/<id>/merged).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eciRunc, makeBundle, mountsUnder, until } from '../helpers/bundle.ts';
import { startManager, type TestManager } from '../helpers/manager.ts';

const root = process.getuid?.() === 0;

/** The filesystem type of the top mount at exactly `path`, from mountinfo. */
function topFsType(path: string): string | undefined {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === path);
  const last = lines.at(-1)?.split(' ');
  return last?.[last.indexOf('-') + 1];
}

/** A bundle whose rootfs is an overlay (lower: a busybox dir) at <dir>/overlay2/ctr/merged. */
async function overlayBundle(dir: string, args: string[]): Promise<{ bundle: string; merged: string; config: string }> {
  const home = join(dir, 'overlay2');
  const merged = join(home, 'ctr', 'merged');
  const bundle = await makeBundle(join(dir, 'bundle'), args, (spec) => { spec.root.path = merged; });
  for (const d of ['diff', 'work', 'merged']) mkdirSync(join(home, 'ctr', d), { recursive: true });
  const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${join(bundle, 'rootfs')},upperdir=${join(home, 'ctr', 'diff')},workdir=${join(home, 'ctr', 'work')}`, merged], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount overlay: ${r.stderr}`);
  return { bundle, merged, config: readFileSync(join(bundle, 'config.json'), 'utf8') };
}

describe.skipIf(!root)(`the host view beside runc create${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  const managers: TestManager[] = [];
  const merged: string[] = [];
  const runcRoots: string[] = [];

  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-hvbeside-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    for (const r of runcRoots) spawnSync('runc', ['--root', r, 'delete', '--force', 'v'], { stdio: 'ignore' });
    await Promise.allSettled(managers.map((m) => m.destroy()));
    for (const p of merged) for (let i = 0; i < 4 && mountsUnder(p).length; i++) spawnSync('umount', ['-l', p]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a failed view fails the create cleanly: runc\'s container deleted, the bundle given back, nothing held, one line', async () => {
    const m = await startManager({ env: { ECI_TEST_PAUSE_AT: 'create.view-fails:v' } });
    managers.push(m);
    const d = join(dir, 'fails');
    const o = await overlayBundle(d, ['sleep', '1000']);
    merged.push(o.merged);
    const runcRoot = join(d, 'runc');
    runcRoots.push(runcRoot);
    const r = await eciRunc(['--root', runcRoot, 'create', '--bundle', o.bundle, 'v'], { ECI_SOCKET: m.socket });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^eci: cannot create container v: cannot mount the host view of the rootfs: .*create\.view-fails/);
    expect(existsSync(join(runcRoot, 'v'))).toBe(false);
    expect(readFileSync(join(o.bundle, 'config.json'), 'utf8')).toBe(o.config);
    const ps = await m.ps();
    expect(ps.containers).toEqual([]);
    expect(ps.ranges).toEqual({});
    expect(mountsUnder(join(m.dir, 'run', 'containers'))).toEqual([]);
    expect(topFsType(o.merged)).toBe('overlay'); // the engine's own, nothing of eci's on it
  });

  it('a manager killed with the view mounted but not recorded: the restarted manager\'s delete takes it down', async () => {
    const m = await startManager({ env: { ECI_TEST_PAUSE_AT: 'create.after-view:v' } });
    managers.push(m);
    const d = join(dir, 'crash');
    const o = await overlayBundle(d, ['sleep', '1000']);
    merged.push(o.merged);
    const runcRoot = join(d, 'runc');
    runcRoots.push(runcRoot);
    const env = { ECI_SOCKET: m.socket };
    const launcher = eciRunc(['--root', runcRoot, 'create', '--bundle', o.bundle, 'v'], env);
    await until(() => existsSync(join(m.dir, 'state', 'paused-at')), 'the manager to park after the view');
    expect(topFsType(o.merged)).toBe('fuse.eci-rootfs');
    // runc create runs meanwhile (it does not use the engine's path); create's answer waits for the view.
    await until(() => existsSync(join(runcRoot, 'v', 'state.json')), 'runc create to have made the container');
    await m.kill9();
    // The launcher, its manager gone after runc ran, ends with runc's status (native/cmd/eci-runc.c).
    await launcher;

    await m.restart();
    // The container was picked up again with its view; the engine's delete takes both down.
    expect((await m.ps()).containers.map((c: { id: string; state: string }) => [c.id, c.state])).toEqual([['v', 'mounted']]);
    const del = await eciRunc(['--root', runcRoot, 'delete', '--force', 'v'], env);
    expect(del.code, del.stderr).toBe(0);
    await until(async () => (await m.ps()).containers.length === 0, 'the container to be gone');
    expect((await m.ps()).ranges).toEqual({});
    expect(mountsUnder(join(m.dir, 'run', 'containers'))).toEqual([]);
    expect(existsSync(join(runcRoot, 'v'))).toBe(false);
    expect(topFsType(o.merged)).toBe('overlay'); // the view is down, the engine's overlay is left
  });

  it('a manager killed before the view was mounted: the restarted manager mounts it, and the delete takes it down', async () => {
    const m = await startManager({ env: { ECI_TEST_PAUSE_AT: 'create.before-view:v' } });
    managers.push(m);
    const d = join(dir, 'early');
    const o = await overlayBundle(d, ['sleep', '1000']);
    merged.push(o.merged);
    const runcRoot = join(d, 'runc');
    runcRoots.push(runcRoot);
    const env = { ECI_SOCKET: m.socket };
    const launcher = eciRunc(['--root', runcRoot, 'create', '--bundle', o.bundle, 'v'], env);
    await until(() => existsSync(join(m.dir, 'state', 'paused-at')), 'the manager to park before the view');
    await until(() => existsSync(join(runcRoot, 'v', 'state.json')), 'runc create to have made the container');
    expect(topFsType(o.merged)).toBe('overlay'); // the engine's own: no view yet
    await m.kill9();
    await launcher;

    await m.restart();
    // The engine's path shows the container's rootfs through eci's view again, before any engine call.
    expect(topFsType(o.merged)).toBe('fuse.eci-rootfs');
    expect((await m.ps()).containers.map((c: { id: string; state: string }) => [c.id, c.state])).toEqual([['v', 'mounted']]);
    const del = await eciRunc(['--root', runcRoot, 'delete', '--force', 'v'], env);
    expect(del.code, del.stderr).toBe(0);
    await until(async () => (await m.ps()).containers.length === 0, 'the container to be gone');
    expect((await m.ps()).ranges).toEqual({});
    expect(mountsUnder(join(m.dir, 'run', 'containers'))).toEqual([]);
    expect(topFsType(o.merged)).toBe('overlay'); // the view is down, the engine's overlay is left
  });
});
