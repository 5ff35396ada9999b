// Disk full in the state dir (a private 32 MiB tmpfs holding the JetStream store, the outbox and
// the nats pid file). While it is full: a create is refused with one line and leaves nothing, and a
// manager start is refused with one line (creates then fail closed). After space is freed: the
// manager starts, the running container still holds its original range, creates work, and the
// container's events are in the stream exactly once, in order.
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eciRunc, makeBundle, mountsUnder, until } from '../helpers/bundle.ts';
import { replay } from '../helpers/events.ts';
import { REPO, startManager, type TestManager } from '../helpers/manager.ts';

const root = process.getuid?.() === 0;

/** Writes zeros to `file` until the filesystem says ENOSPC. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(1 << 16);
  let n = 0;
  try {
    for (;;) n += writeSync(fd, buf);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return n;
}

describe.skipIf(!root)(`disk full in the state dir${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  let state: string;
  let m: TestManager | undefined;
  let mounted = false;

  beforeAll(() => {
    dir = mkdtempSync('/tmp/eci-full-');
    chmodSync(dir, 0o711);
    state = join(dir, 'state');
    mkdirSync(state);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', state], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
    mounted = true;
  });
  afterAll(async () => {
    await m?.destroy(); // stops the manager and its nats-server, detaches what is under dir (our tmpfs too)
    if (mounted && mountsUnder(state).length) spawnSync('umount', [state]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses creates with one line while full, keeps state consistent, and works again once space is freed', async () => {
    m = await startManager({ dir });
    const env = { ECI_SOCKET: m.socket };
    const work = mkdtempSync('/tmp/eci-full-b-');
    chmodSync(work, 0o755);
    try {
      const runcRoot = join(work, 'runc');
      const b1 = await makeBundle(join(work, 'b1'), ['sleep', '1000']);
      const b2 = await makeBundle(join(work, 'b2'), ['true']);
      expect((await eciRunc(['--root', runcRoot, 'create', '--bundle', b1, 'keep'], env)).code).toBe(0);
      expect((await eciRunc(['--root', runcRoot, 'start', 'keep'], env)).code).toBe(0);
      const before = await m.ps();
      const keepUid = before.containers.find((c) => c.id === 'keep')!.uid!.hostID;

      const filler = join(state, 'filler');
      expect(fill(filler)).toBeGreaterThan(0);

      const refused = async (id: string) => {
        const r = await eciRunc(['--root', runcRoot, 'create', '--bundle', b2, id], env);
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr.trim()).toMatch(new RegExp(`^eci: the state dir ${state} is full \\(\\d+ KiB free\\): refusing to create a container until space is freed$`));
        expect(existsSync(join(runcRoot, id))).toBe(false);
        const ps = await m!.ps();
        expect(ps.containers.map((c) => c.id)).toEqual(['keep']);
        expect(Object.values(ps.ranges)).toEqual(['keep']);
        expect(mountsUnder(join(dir, 'run', 'containers', id))).toEqual([]);
      };
      await refused('full1');

      // A manager stopped while full cannot start again (JetStream cannot open a consumer on a full
      // disk): it says so in one line, before touching anything.
      await m.stop();
      const start = spawnSync(process.execPath, [join(REPO, 'bin/eci'), 'daemon'], { env: { ...process.env, ...m.env }, encoding: 'utf8', timeout: 30_000 });
      expect(start.status).toBe(1);
      const errLines = start.stderr.trim().split('\n');
      expect(errLines).toHaveLength(1);
      expect(errLines[0]).toMatch(new RegExp(`^eci: the state dir ${state} is full \\(\\d+ KiB free\\): the manager cannot start; free space there and start it again$`));
      const r0 = await eciRunc(['--root', runcRoot, 'create', '--bundle', b2, 'full2'], env);
      expect(r0.code).toBe(1);
      expect(r0.stderr).toMatch(/^eci: the eci manager is not reachable/); // fail closed
      expect(existsSync(join(runcRoot, 'full2'))).toBe(false);

      // Space back: the manager starts, keeps the running container in its range; creates work, in another range.
      rmSync(filler);
      await m.restart();
      expect((await m.ps()).containers.map((c) => [c.id, c.state, c.uid?.hostID])).toEqual([['keep', 'running', keepUid]]);
      expect(Object.values((await m.ps()).ranges)).toEqual(['keep']);
      const r = await eciRunc(['--root', runcRoot, 'run', '--bundle', await makeBundle(join(work, 'b3'), ['cat', '/proc/self/uid_map']), 'after1'], env);
      expect(r.code, r.stderr).toBe(0);
      expect(Number(r.stdout.trim().split(/\s+/)[1])).not.toBe(keepUid);

      // The survivor's story in the stream: each step once, in order (nothing torn, nothing repeated).
      const ev = await replay(m.natsUrl, 'eci.v1.evt.container.keep.>');
      expect(ev.map((e) => e.event.type)).toEqual(['container.created', 'container.mapped', 'container.mounted', 'container.running']);

      // And it is still fully managed: deleting it releases everything.
      expect((await eciRunc(['--root', runcRoot, 'kill', 'keep', 'KILL'], env)).code).toBe(0);
      await until(async () => JSON.parse((await eciRunc(['--root', runcRoot, 'state', 'keep'], env)).stdout || '{}').status === 'stopped', 'keep stopped');
      expect((await eciRunc(['--root', runcRoot, 'delete', 'keep'], env)).code).toBe(0);
      await until(async () => { const p = await m!.ps(); return p.containers.length === 0 && Object.keys(p.ranges).length === 0; }, 'everything released');
      expect(mountsUnder(join(dir, 'run', 'containers'))).toEqual([]);
      const all = await until(async () => {
        const e = await replay(m!.natsUrl, 'eci.v1.evt.container.keep.>');
        return e.length === 5 ? e : undefined;
      }, 'keep stopped event');
      expect(all.at(-1)!.event.type).toBe('container.stopped');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
