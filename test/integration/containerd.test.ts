// eci through containerd 1.6 (the one a private dockerd starts) and ctr: `ctr run --runc-binary
// <abs launcher>` (runtime io.containerd.runc.v2, whose shim calls the binary like runc) gives the
// container an exclusive user-namespace range, host namespaces are refused, task exec works, and
// removing the task frees the range.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerdAvailable, containerdOf, importImageToContainerd, type Containerd } from '../helpers/containerd.ts';
import { importBusyboxImage, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { FIRST, startManager, type TestManager } from '../helpers/manager.ts';
import { until } from '../helpers/bundle.ts';

const avail = containerdAvailable();
const norm = (s: string) => s.trim().split(/\s+/).join(' ');
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

describe.skipIf(!avail.ok)(`eci through containerd${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let c: Containerd;
  let ref: string;
  let n = 0;
  const id = () => `eci-t${process.pid}-${++n}`;
  const ok = async (args: string[]) => {
    const r = await c.ctr(args);
    expect(r.code, `ctr ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    m = await startManager();
    d = await startDockerd();
    c = containerdOf(d);
    ref = await importImageToContainerd(d, c, await importBusyboxImage(d));
  });
  afterAll(async () => {
    await c?.cleanup();
    await d?.stop();
    await m?.destroy();
  });

  it(`ctr run --rm --runc-binary gives the container 0 ${FIRST} 65536 and frees the range`, async () => {
    const out = await ok(['run', '--rm', ...c.runFlags(m.runtime), ref, id(), 'cat', '/proc/self/uid_map', '/proc/self/gid_map']);
    expect(norm(out)).toBe(`0 ${FIRST} 65536 0 ${FIRST} 65536`);
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
    expect((await ok(['container', 'ls', '-q'])).trim()).toBe('');
  });

  it('refuses host namespaces with a clear error (--net-host, --with-ns a host namespace)', async () => {
    const r = await c.ctr(['run', '--rm', ...c.runFlags(m.runtime), '--net-host', ref, id(), 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("eci containers can't share a network namespace with the host (because they use the linux user-namespace for isolation)");
    // The host's own namespaces, named through a host process (the manager; /proc/1/ns may be unreadable in sandboxes).
    for (const ns of ['pid', 'ipc', 'uts']) {
      const r2 = await c.ctr(['run', '--rm', ...c.runFlags(m.runtime), '--with-ns', `${ns}:/proc/${m.pid()}/ns/${ns}`, ref, id(), 'true']);
      expect(r2.code).not.toBe(0);
      expect(r2.stderr).toContain(`eci containers can't share namespaces [${ns}] with the host (because they use the linux user-namespace for isolation)`);
    }
    expect((await m.ps()).ranges).toEqual({}); // nothing held after a refusal
    expect((await ok(['container', 'ls', '-q'])).trim()).toBe('');
  });

  it('runs a detached task: running in the manager, task exec joins it; kill + rm frees the range', async () => {
    const cid = id();
    await ok(['run', '-d', ...c.runFlags(m.runtime), ref, cid, 'sleep', '300']);
    try {
      // start's report reaches the manager as the launcher exits, not before the engine answers: wait for it.
      await until(async () => (await m.ps()).containers.find((x) => x.id === cid)?.state === 'running', `${cid} running in the manager`);
      expect((await m.ps()).containers.map((x) => [x.id, x.state, x.uid?.hostID])).toContainEqual([cid, 'running', FIRST]);
      const line = (await ok(['task', 'ls'])).split('\n').find((l) => l.startsWith(cid + ' '))!;
      const [, pid, status] = line.trim().split(/\s+/);
      expect(status).toBe('RUNNING');
      expect(uidOf(Number(pid))).toBe(FIRST); // container root is host uid FIRST, never 0
      // `ctr task ps` makes the shim call the runtime (`ps --format json <id>`).
      expect((await ok(['task', 'ps', cid])).split('\n').map((l) => l.split(/\s+/)[0])).toContain(pid);
      expect(norm(await ok(['task', 'exec', '--exec-id', 'x1', cid, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
    } finally {
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', cid]);
      for (let i = 0; i < 50; i++) {
        const ls = await c.ctr(['task', 'ls']);
        if (!ls.stdout.split('\n').some((l) => l.startsWith(cid + ' ') && !/STOPPED/.test(l))) break;
        await sleep(100);
      }
      const rm = await c.ctr(['task', 'rm', cid]);
      expect(rm.code, rm.stderr).toBe(0);
      await ok(['container', 'rm', cid]);
    }
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
  });
});
