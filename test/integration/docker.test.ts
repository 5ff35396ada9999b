// eci through a real Docker engine (Debian docker.io, started privately by the test): exclusive
// user-namespace ranges, refused host namespaces, a writable rootfs with no chown, events on the
// bus, and a manager restart that does not double-allocate.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import { FIRST, SECOND, REPO, type TestManager } from '../helpers/manager.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();
const norm = (s: string) => s.trim().split(/\s+/).join(' ');
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

describe.skipIf(!avail.ok)(`eci through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
  });

  it(`gives the first container 0 ${FIRST} 65536 and a concurrent one 0 ${SECOND} 65536`, async () => {
    expect(norm((await run(img, 'cat', '/proc/self/uid_map')).stdout)).toBe(`0 ${FIRST} 65536`);
    const id = (await ok(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sleep', '300'])).trim();
    try {
      const r = await run(img, 'cat', '/proc/self/uid_map', '/proc/self/gid_map');
      expect(norm(r.stdout)).toBe(`0 ${SECOND} 65536 0 ${SECOND} 65536`);
      // On the host, the long-running container's processes run as the first range's root, never 0.
      const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', id])).trim());
      expect(uidOf(pid)).toBe(FIRST);
      // docker exec joins the same user namespace.
      expect(norm(await ok(['exec', id, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
      expect((await m.ps()).containers.map((c) => [c.id, c.state, c.uid?.hostID])).toContainEqual([id, 'running', FIRST]);
    } finally {
      await d.docker(['rm', '-f', id]);
    }
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
  });

  it("runs Docker's libnetwork-setkey hook as eci-setkey, and dockerd gets the container's network namespace", async () => {
    const id = (await ok(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sleep', '300'])).trim();
    try {
      const ps = (await m.ps()) as { containers: { id: string; bundle?: string }[] };
      const bundle = ps.containers.find((c) => c.id === id)?.bundle;
      expect(bundle, 'the container is in the manager ps').toBeTruthy();
      // The spec runc ran (eci's rewrite stays in the bundle while the container lives).
      const hooks = JSON.parse(readFileSync(join(bundle!, 'config.json'), 'utf8')).hooks.prestart as { path: string; args: string[] }[];
      expect(hooks.map((h) => [h.path, h.args[0], h.args.slice(2)])).toEqual([[join(REPO, 'native/bin/eci-setkey'), 'eci-setkey', [id, expect.stringMatching(/^[0-9a-f]{12}$/)]]]);
      // dockerd bound the netns the hook named onto its sandbox key: the same nsfs inode as the init's.
      const pid = Number((await ok(['inspect', '-f', '{{.State.Pid}}', id])).trim());
      const key = (await ok(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', id])).trim();
      expect(key).toMatch(/^\//);
      const ns = statSync(`/proc/${pid}/ns/net`);
      expect([statSync(key).dev, statSync(key).ino]).toEqual([ns.dev, ns.ino]);
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  });

  it('still maps a range with --userns=host', async () => {
    expect(norm((await run('--userns=host', img, 'cat', '/proc/self/uid_map')).stdout)).toBe(`0 ${FIRST} 65536`);
  });

  it('refuses host namespaces with a clear error', async () => {
    for (const ns of ['pid', 'ipc', 'uts']) {
      const r = await run(`--${ns}=host`, img, 'true');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`eci containers can't share namespaces [${ns}] with the host (because they use the linux user-namespace for isolation)`);
    }
    const r = await d.docker(['run', '--rm', '--network=host', '--runtime=eci', img, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("eci containers can't share a network namespace with the host (because they use the linux user-namespace for isolation)");
    expect((await m.ps()).ranges).toEqual({}); // nothing held after a refusal
  });

  it('lets container root write its rootfs with no chown; writes land in the upper dir as uid 0', async () => {
    const id = (await ok(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', 'echo x > /etc/f && mkdir /newdir && sleep 300'])).trim();
    try {
      const upper = (await ok(['inspect', '-f', '{{.GraphDriver.Data.UpperDir}}', id])).trim();
      const lower = (await ok(['inspect', '-f', '{{.GraphDriver.Data.LowerDir}}', id])).trim().split(':');
      for (let i = 0; i < 50 && !(() => { try { return statSync(join(upper, 'etc/f')); } catch { return false; } })(); i++) await new Promise((r) => setTimeout(r, 100));
      const f = statSync(join(upper, 'etc/f'));
      expect([f.uid, f.gid]).toEqual([0, 0]);
      expect(statSync(join(upper, 'newdir')).uid).toBe(0);
      // Image files keep their owners; nothing was chowned.
      const imageLayer = lower.find((l) => { try { return statSync(join(l, 'bin/busybox')); } catch { return false; } })!;
      expect(statSync(join(imageLayer, 'bin/busybox')).uid).toBe(0);
      // The engine sees the same files: docker diff and docker cp.
      expect(await ok(['diff', id])).toMatch(/A \/etc\/f/);
      expect(await ok(['exec', id, 'stat', '-c', '%u', '/etc/f'])).toBe('0\n');
      const cp = await d.docker(['cp', `${id}:/etc/f`, '-']);
      expect(cp.code, cp.stderr).toBe(0);
      expect(cp.stdout).toContain('x\n');
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  });

  it('allocates a tty through the console socket (docker run -t)', async () => {
    const r = await d.docker(['run', '--rm', '-t', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', 'test -t 0 && echo tty']);
    expect(r.stdout.trim()).toBe('tty');
  });

  it('publishes every lifecycle transition to JetStream, in order, replayable from the start', async () => {
    const id = (await ok(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'true'])).trim();
    await ok(['wait', id]);
    await ok(['rm', id]);
    const subject = `eci.v1.evt.container.${id}.>`;
    let events = await replay(m.natsUrl, subject);
    for (let i = 0; i < 20 && events.length < 5; i++) { await new Promise((r) => setTimeout(r, 100)); events = await replay(m.natsUrl, subject); }
    expect(events.map((e) => e.event.type)).toEqual(['container.created', 'container.mapped', 'container.mounted', 'container.running', 'container.stopped']);
    expect(events.map((e) => e.subject)).toEqual(['created', 'mapped', 'mounted', 'running', 'stopped'].map((s) => `eci.v1.evt.container.${id}.${s}`));
    const seqs = events.map((e) => e.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    const mapped = events[1].event.data as { uid: { hostID: number; size: number } };
    expect(mapped.uid.size).toBe(65536);
    // A second replay sees exactly the same events (same ulids).
    expect((await replay(m.natsUrl, subject)).map((e) => e.event.id)).toEqual(events.map((e) => e.event.id));
    // The same history through the CLI, as a user would read it.
    const cli = execFileSync(process.execPath, [join(REPO, 'bin/eci'), 'events', '--container', id, '--json'], { env: { ...process.env, ...m.env } }).toString();
    expect(cli.trim().split('\n').map((l) => JSON.parse(l).type)).toEqual(events.map((e) => e.event.type));
    const text = execFileSync(process.execPath, [join(REPO, 'bin/eci'), 'events', '--kind', 'allocator'], { env: { ...process.env, ...m.env } }).toString();
    expect(text).toMatch(new RegExp(`allocator.allocated ${id.slice(0, 12)} index=\\d+ uid=`));
    const alloc = await replay(m.natsUrl, 'eci.v1.evt.allocator.>');
    expect(alloc.filter((e) => (e.event.data as { container: string }).container === id).map((e) => e.event.type)).toEqual(['allocator.allocated', 'allocator.freed']);
  });

  it('starts containers concurrently: distinct ranges, every rootfs complete, nothing left after', async () => {
    // Regression: a clone of Docker's shared data root once joined its peer group and took another
    // container's freshly mounted rootfs with it when detached (empty rootfs under load).
    const ids: string[] = [];
    for (let batch = 0; batch < 4; batch++) {
      const started = await Promise.all(Array.from({ length: 6 }, () =>
        d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', 'test -x /bin/busybox && sleep 300'])));
      for (const r of started) {
        expect(r.code, r.stderr).toBe(0);
        ids.push(r.stdout.trim());
      }
    }
    try {
      const ps = await m.ps();
      const mine = ps.containers.filter((c) => ids.includes(c.id));
      expect(mine).toHaveLength(24);
      expect(new Set(mine.map((c) => c.uid?.hostID)).size).toBe(24);
      const states = await d.docker(['inspect', '-f', '{{.State.Running}}', ...ids]);
      expect(states.stdout.trim().split('\n')).toEqual(Array(24).fill('true'));
    } finally {
      await d.docker(['rm', '-f', ...ids]);
    }
    expect((await m.ps()).ranges).toEqual({});
  });

  it('after a manager crash and restart, does not hand out a range a running container holds', async () => {
    const id = (await ok(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sleep', '300'])).trim();
    try {
      expect(norm(await ok(['exec', id, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
      await m.kill9();
      // Fail closed: with the manager down, a new container does not start.
      const down = await run(img, 'true');
      expect(down.code).not.toBe(0);
      expect(down.stderr).toContain('eci manager is not reachable');
      await m.restart();
      expect((await m.ps()).containers.map((c) => [c.id, c.state])).toEqual([[id, 'running']]);
      expect(norm((await run(img, 'cat', '/proc/self/uid_map')).stdout)).toBe(`0 ${SECOND} 65536`);
    } finally {
      await d.docker(['rm', '-f', id]);
    }
    expect((await m.ps()).ranges).toEqual({});
  });
});
