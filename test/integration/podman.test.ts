// eci through Podman 4.3.1 (Debian podman, private storage and config, see helpers/podman.ts):
// `podman --runtime <abs launcher>` gives the container an exclusive user-namespace range, host
// namespaces are refused, `state` (which Podman calls without --root) and `exec` work, and
// removing the container frees its range.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIRST, startManager, type TestManager } from '../helpers/manager.ts';
import { until } from '../helpers/bundle.ts';
import { importPodmanBusybox, podmanAvailable, startPodman, type Podman } from '../helpers/podman.ts';

const avail = podmanAvailable();
const norm = (s: string) => s.trim().split(/\s+/).join(' ');
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

describe.skipIf(!avail.ok)(`eci through Podman${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let p: Podman;
  let img: string;
  let n = 0;
  const name = () => `eci-t${process.pid}-${++n}`;
  const withEci = (args: string[]) => p.podman(['--runtime', m.runtime, ...args]);
  const ok = async (args: string[]) => {
    const r = await withEci(args);
    expect(r.code, `podman ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    m = await startManager();
    p = await startPodman();
    img = await importPodmanBusybox(p);
  });
  afterAll(async () => {
    await p?.stop();
    await m?.destroy();
  });

  it(`gives the container 0 ${FIRST} 65536 (podman run, then podman rm)`, async () => {
    const c = name();
    try {
      expect(norm(await ok(['run', '--name', c, ...p.runFlags, img, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
    } finally {
      await p.podman(['rm', '-f', '-t', '0', c]);
    }
    expect((await m.ps()).ranges).toEqual({});
  });

  // Regression: for `--rm` containers Podman mounts its overlay `volatile`, which leaves
  // work/work/incompat/volatile; an overlay on the same workdir is refused. eci uses its own workdir.
  it(`podman run --rm prints 0 ${FIRST} 65536 (volatile overlay)`, async () => {
    expect(norm(await ok(['run', '--rm', ...p.runFlags, img, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
    expect((await m.ps()).ranges).toEqual({});
  });

  // Podman asks for nofile 1048576 by default (no --ulimit in runFlags): eci lowers it to the
  // manager's own hard limit instead of failing the create ("error setting rlimit type 7").
  it("runs with Podman's default rlimits, clamped to the manager's hard limits", async () => {
    const limits = readFileSync(`/proc/${m.pid()}/limits`, 'utf8');
    const hard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(limits)![1]);
    expect(hard).toBeLessThan(1048576); // else this machine cannot show the clamp
    expect(norm(await ok(['run', '--rm', ...p.runFlags, img, 'sh', '-c', 'ulimit -Hn']))).toBe(String(hard));
    expect((await m.ps()).ranges).toEqual({});
  });

  it('refuses host namespaces with a clear error', async () => {
    for (const ns of ['pid', 'ipc', 'uts']) {
      const c = name();
      try {
        const r = await withEci(['run', '--name', c, ...p.runFlags, `--${ns}=host`, img, 'true']);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain(`eci containers can't share namespaces [${ns}] with the host (because they use the linux user-namespace for isolation)`);
      } finally {
        await p.podman(['rm', '-f', '-t', '0', c]);
      }
    }
    const c = name();
    try {
      const flags = p.runFlags.filter((f, i, a) => f !== '--network' && a[i - 1] !== '--network');
      const r = await withEci(['run', '--name', c, ...flags, '--network=host', img, 'true']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("eci containers can't share a network namespace with the host (because they use the linux user-namespace for isolation)");
    } finally {
      await p.podman(['rm', '-f', '-t', '0', c]);
    }
    expect((await m.ps()).ranges).toEqual({}); // nothing held after a refusal
  });

  it('runs a detached container: running in the manager, podman ps/inspect/state, exec; rm -f frees the range', async () => {
    const id = (await ok(['run', '-d', ...p.runFlags, img, 'sleep', '300'])).trim();
    try {
      // start's report reaches the manager as the launcher exits, not before the engine answers: wait for it.
      await until(async () => (await m.ps()).containers.find((c) => c.id === id)?.state === 'running', `${id} running in the manager`);
      expect((await m.ps()).containers.map((c) => [c.id, c.state, c.uid?.hostID])).toContainEqual([id, 'running', FIRST]);
      // --sync makes Podman ask the runtime (`state <id>`, without --root) instead of its own database.
      const ps = JSON.parse(await ok(['ps', '--sync', '--format', 'json'])) as { Id: string; State: string }[];
      expect(ps.map((c) => [c.Id, c.State])).toEqual([[id, 'running']]);
      expect((await ok(['inspect', '-f', '{{.State.Status}} {{.State.Running}}', id])).trim()).toBe('running true');
      // What Podman's `state` call sees: no --root, so the launcher's default root.
      const state = JSON.parse((await promisify(execFile)(m.runtime, ['state', id])).stdout) as { id: string; status: string; pid: number };
      expect([state.id, state.status]).toEqual([id, 'running']);
      const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', id])).trim());
      expect(state.pid).toBe(pid);
      expect(uidOf(pid)).toBe(FIRST); // container root is host uid FIRST, never 0
      // podman exec (conmon -> runtime exec --process ... --detach) joins the same user namespace.
      expect(norm(await ok(['exec', id, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
    } finally {
      const r = await withEci(['rm', '-f', '-t', '0', id]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
  });
});
