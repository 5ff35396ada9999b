// The sysctl reconciler end to end: the writable FUSE views (native mountRwFs + SysctlFs) bound into two
// real runc containers (own user namespace 0->100000/65536, own pid/net namespaces) at
// /eci-sys/fs/file-max, and SysctlReconciler writing the host's /proc/sys/fs/file-max. Each container
// reads back its own value; the host holds the max over live containers and the baseline, drops when
// the container that raised it is gone, and every host write is an event. The host value is restored.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SysctlReconciler } from '../../actors/sysctl/reconciler.actor.ts';
import { memKv } from '../helpers/mem-kv.ts';
import { SysctlFs } from '../../actors/sysctl/fs.ts';
import { keyByName } from '../../actors/sysctl/keys.ts';
import { validateSysctlEvent } from '../../bus/schemas/v1.ts';
import { envelope } from '../../bus/events.ts';
import { makeBusyboxRootfs } from '../helpers/busybox.ts';
import { fuseRuncSkipReason, isMounted } from '../helpers/skip.ts';

const run = promisify(execFile);
const skip = fuseRuncSkipReason();
const mounted = isMounted;
const HOST = '/proc/sys/fs/file-max';
const hostValue = async () => Number((await readFile(HOST, 'utf8')).trim());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface Running { id: string; proc: ChildProcess; out: () => string; err: () => string; done: Promise<number | null> }

describe.skipIf(skip !== '')(`sysctl reconciler with runc containers${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let mnt: string;
  let original: number;
  let rec: SysctlReconciler;
  let fs: SysctlFs;
  const events: unknown[] = [];
  const live: Running[] = [];
  const runcRoot = () => join(dir, 'runc');

  beforeAll(async () => {
    original = await hostValue();
    dir = mkdtempSync('/tmp/eci-sysctl-');
    chmodSync(dir, 0o755);
    mnt = join(dir, 'mnt');
    mkdirSync(mnt, { mode: 0o755 });
    rec = new SysctlReconciler({
      kv: memKv(), log: pino({ level: 'silent' }), keys: [keyByName('fs.file-max')!, keyByName('fs.nr_open')!],
      publish: async (subject, type, data) => { events.push({ subject, ...envelope(type, data) }); },
    });
    await rec.start();
    fs = new SysctlFs({ client: rec, keys: rec.reconciled() });
    await fs.start(mnt);
  });
  afterAll(async () => {
    for (const r of live) await run('runc', ['--root', runcRoot(), 'delete', '-f', r.id]).catch(() => {});
    rec?.stop();
    await fs?.stop();
    if (original !== undefined) await writeFile(HOST, `${original}\n`);
    if (dir) {
      if (mounted(mnt)) await run('umount', ['-l', mnt]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Starts `script` as the init of container `name` (runc run, foreground) and registers it. */
  async function start(name: string, script: string): Promise<Running> {
    const id = `eci-sysctl-${name}-${process.pid}`;
    const b = join(dir, name);
    await makeBusyboxRootfs(join(b, 'rootfs'));
    mkdirSync(join(b, 'rootfs/eci-sys/fs'), { recursive: true });
    for (const f of ['file-max', 'nr_open']) writeFileSync(join(b, 'rootfs/eci-sys/fs', f), '');
    chmodSync(b, 0o755);
    // Bound from the container's view (its own inodes), as the manager does.
    const view = fs.viewDir(id)!;
    const bind = (file: string, dest: string) => ({ destination: dest, type: 'bind', source: join(view, file), options: ['rbind', 'rw'] });
    const spec = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['sh', '-c', script], env: ['PATH=/bin'], cwd: '/' },
      root: { path: 'rootfs', readonly: false },
      hostname: name,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        bind('sys-fs-file-max', '/eci-sys/fs/file-max'),
        bind('sys-fs-nr-open', '/eci-sys/fs/nr_open'),
      ],
      linux: {
        namespaces: ['pid', 'ipc', 'uts', 'mount', 'network', 'user'].map((type) => ({ type })),
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      },
    };
    writeFileSync(join(b, 'config.json'), JSON.stringify(spec));
    const pidFile = join(dir, `${name}.pid`);
    const proc = spawn('runc', ['--root', runcRoot(), 'run', '--bundle', b, '--pid-file', pidFile, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d));
    proc.stderr!.on('data', (d: Buffer) => (err += d));
    const done = new Promise<number | null>((r) => proc.on('close', r));
    let pid = 0;
    for (let i = 0; i < 500 && !pid; i++) {
      if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, 'utf8')) || 0;
      if (!pid) await sleep(10);
    }
    if (!pid) throw new Error(`runc wrote no pid (exit ${await done}): ${err}`);
    fs.register(id, pid);
    const r: Running = { id, proc, out: () => out, err: () => err, done };
    live.push(r);
    return r;
  }

  async function until(r: Running, marker: string): Promise<void> {
    for (let i = 0; i < 1000 && !r.out().includes(marker); i++) {
      if (r.proc.exitCode !== null) break;
      await sleep(10);
    }
    expect(r.out(), r.err()).toContain(marker);
  }

  /** Kills the container, then tells the reconciler (as the manager does on delete). */
  async function stopContainer(r: Running): Promise<void> {
    await run('runc', ['--root', runcRoot(), 'kill', r.id, 'KILL']).catch(() => {});
    await r.done;
    await run('runc', ['--root', runcRoot(), 'delete', '-f', r.id]).catch(() => {});
    fs.unregister(r.id);
    rec.gone(r.id);
    await rec.settled();
  }

  const script = (v: number) => [
    'sleep 0.3', 'f=/eci-sys/fs/file-max',
    `echo ${v} > $f; echo "set=$?"`, 'echo "own=$(cat $f)"',
    'echo -5 > $f; echo "neg=$?"', 'echo 1.5 > $f; echo "frac=$?"', 'echo abc > $f; echo "word=$?"',
    'echo 1 > /eci-sys/fs/nr_open; echo "nrlow=$?"',
    'echo "own2=$(cat $f)"', 'echo ready', 'while :; do sleep 1; done',
  ].join('\n');

  it('serves the host value to a caller from no container', async () => {
    expect((await readFile(join(mnt, 'sys-fs-file-max'), 'utf8')).trim()).toBe(String(await hostValue()));
    const { stdout } = await run('stat', ['-c', '%a %u', join(mnt, 'sys-fs-file-max')]);
    expect(stdout.trim()).toBe('666 0');
  });

  it('keeps each container its value, the host at the max of the live ones, and lowers it back', async () => {
    const base = await hostValue();
    expect(rec.context().entries['fs.file-max'].baseline).toBe(base);

    const a = await start('a', script(base + 1000));
    await until(a, 'ready');
    await rec.settled();
    expect(a.out()).toContain(`set=0\nown=${base + 1000}\n`);
    // out of range or not an integer: EINVAL, and the container's value is unchanged
    expect(a.out()).toMatch(/neg=1\nfrac=1\nword=1\nnrlow=1\nown2=\d+/);
    expect(a.out()).toContain(`own2=${base + 1000}\n`);
    expect(a.err().match(/Invalid argument/g)?.length, a.err()).toBe(4);
    expect(await hostValue()).toBe(base + 1000);
    // a's view shows a's value to any reader; a write through it is still judged by the writer
    const aFile = join(fs.viewDir(a.id)!, 'sys-fs-file-max');
    expect((await readFile(aFile, 'utf8')).trim()).toBe(String(base + 1000));
    const denied = await run('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', 'busybox', 'sh', '-c', `echo 5 > ${aFile}`]).then(() => 'written', (e: { stderr: string }) => e.stderr);
    expect(denied).toMatch(/Permission denied/);
    expect((await readFile(aFile, 'utf8')).trim()).toBe(String(base + 1000));

    const b = await start('b', script(base + 500));
    await until(b, 'ready');
    await rec.settled();
    expect(b.out()).toContain(`set=0\nown=${base + 500}\n`);
    expect(await hostValue()).toBe(base + 1000);
    // the host (no container) sees the host value
    expect((await readFile(join(mnt, 'sys-fs-file-max'), 'utf8')).trim()).toBe(String(base + 1000));

    await stopContainer(a);
    expect(await hostValue()).toBe(base + 500);
    await stopContainer(b);
    expect(await hostValue()).toBe(base);

    const written = events.map((e) => validateSysctlEvent(e));
    expect(written.map((e) => e.data)).toEqual([
      { key: 'fs.file-max', old: base, new: base + 1000, container: a.id },
      { key: 'fs.file-max', old: base + 1000, new: base + 500, container: a.id },
      { key: 'fs.file-max', old: base + 500, new: base, container: b.id },
    ]);
    expect(events.every((e) => (e as { subject: string }).subject === 'eci.v1.evt.sysctl.fs-file-max.written')).toBe(true);
  });

  it('close() leaves no mount behind', async () => {
    await fs.stop();
    expect(mounted(mnt)).toBe(false);
  });
});
