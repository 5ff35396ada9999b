// Containers that share namespaces through Docker (issue 15): `--network`, `--ipc` and `--pid
// container:X` join X's user namespace and range (one group), a server in one member answers the
// other on loopback, the range is freed only with the last member (either removal order, and across
// a manager kill -9), and joining a runc container's namespaces is refused with nothing created.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import { replay } from '../helpers/events.ts';
import { FIRST, SECOND, type TestManager } from '../helpers/manager.ts';

const avail = dockerdAvailable();
const norm = (s: string) => s.trim().split(/\s+/).join(' ');

describe.skipIf(!avail.ok)(`eci groups through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  /** A detached eci container running `cmd` (default: sleep). */
  const start = (flags: string[], cmd: string[] = ['sleep', '300']) => ok(['run', '-d', '--runtime=eci', ...flags, img, ...cmd]);
  const ns = async (id: string, kind: string) => ok(['exec', id, 'readlink', `/proc/self/ns/${kind}`]);
  const uidMap = async (id: string) => norm(await ok(['exec', id, 'cat', '/proc/self/uid_map']));
  const groupOf = async (id: string) => (await m.ps()).containers.find((c) => c.id === id) as { group?: string } | undefined;
  /** Polls `cond` for up to 20 s; fails naming what it waited for. */
  const until = async (what: string, cond: () => Promise<boolean>) => {
    for (let i = 0; i < 200; i++) {
      if (await cond()) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  /** Nothing left of the containers: not in the manager, no range held, no run dir. */
  const nothingLeft = async (ids: string[]) => {
    await until('the manager to forget every container', async () => (await m.ps()).containers.length === 0);
    expect((await m.ps()).ranges).toEqual({});
    for (const id of ids) expect(existsSync(join(m.dir, 'run', 'containers', id)), `run dir of ${id}`).toBe(false);
  };

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
  });

  it('--network container:X shares X\'s network namespace, user namespace and range; events and ps name the group', async () => {
    const a = await start([...RUN_FLAGS]);
    const b = await start(['--network', `container:${a}`]);
    try {
      expect(await ns(b, 'net')).toBe(await ns(a, 'net'));
      expect(await ns(b, 'user')).toBe(await ns(a, 'user'));
      expect(await uidMap(b)).toBe(`0 ${FIRST} 65536`);
      expect(await uidMap(a)).toBe(`0 ${FIRST} 65536`);
      // The engine's files for b are a's (hosts, resolv.conf): readable and writable by b's root.
      await ok(['exec', b, 'sh', '-c', 'cat /etc/hosts /etc/resolv.conf >/dev/null && echo "# b" >> /etc/hosts']);
      const ps = await m.ps();
      expect(Object.values(ps.ranges)).toEqual([a]); // one range, held under the group's key
      expect((await groupOf(a))?.group).toBe(a);
      expect((await groupOf(b))?.group).toBe(a);
      // A third container outside the group gets the next range.
      const c = await start([...RUN_FLAGS]);
      expect(await uidMap(c)).toBe(`0 ${SECOND} 65536`);
      await ok(['rm', '-f', c]);
      const ev = await replay(m.natsUrl, `eci.v1.evt.container.${b}.>`);
      expect(ev.map((e) => [e.event.type, (e.event.data as { group?: string }).group])).toContainEqual(['container.running', a]);
    } finally {
      // b first, then a: the range goes with the last one.
      await d.docker(['rm', '-f', b]);
      expect(Object.values((await m.ps()).ranges)).toEqual([a]);
      await d.docker(['rm', '-f', a]);
    }
    await nothingLeft([a, b]);
  });

  it('--ipc container:X (X --ipc shareable) shares the IPC namespace and the range', async () => {
    const a = await start([...RUN_FLAGS, '--ipc', 'shareable']);
    const b = await start([...RUN_FLAGS, '--ipc', `container:${a}`]);
    try {
      expect(await ns(b, 'ipc')).toBe(await ns(a, 'ipc'));
      expect(await ns(b, 'net')).not.toBe(await ns(a, 'net'));
      expect(await uidMap(b)).toBe(await uidMap(a));
      // The shared /dev/shm is one tmpfs: a file written by one member is seen by the other.
      await ok(['exec', a, 'sh', '-c', 'echo shared > /dev/shm/x']);
      expect(await ok(['exec', b, 'cat', '/dev/shm/x'])).toBe('shared');
    } finally {
      await d.docker(['rm', '-f', a]);
      await d.docker(['rm', '-f', b]);
    }
    await nothingLeft([a, b]);
  });

  it('members see the same owners on a shared volume, and files keep those ids on disk', async () => {
    const vol = `eci-groups-${process.pid}`;
    await ok(['volume', 'create', vol]);
    const a = await start([...RUN_FLAGS, '-v', `${vol}:/data`]);
    const b = await start(['--network', `container:${a}`, '-v', `${vol}:/data`]);
    try {
      await ok(['exec', b, 'sh', '-c', 'echo from-b > /data/f && chown 1000:1001 /data/f']);
      expect(await ok(['exec', a, 'stat', '-c', '%u:%g %n', '/data/f'])).toBe('1000:1001 /data/f');
      await ok(['exec', a, 'sh', '-c', 'echo from-a >> /data/f']);
      expect(await ok(['exec', b, 'cat', '/data/f'])).toBe('from-b\nfrom-a');
      const dir = await ok(['volume', 'inspect', '-f', '{{.Mountpoint}}', vol]);
      const st = statSync(join(dir, 'f'));
      expect([st.uid, st.gid]).toEqual([1000, 1001]); // the container's ids, not the range's
    } finally {
      await d.docker(['rm', '-f', b]);
      await d.docker(['rm', '-f', a]);
      await d.docker(['volume', 'rm', vol]);
    }
    await nothingLeft([a, b]);
  });

  it('--pid container:X shares the PID namespace: X\'s processes are visible, /proc emulation works in both', async () => {
    const a = await start([...RUN_FLAGS], ['sleep', '301']);
    const b = await start([...RUN_FLAGS, '--pid', `container:${a}`]);
    try {
      expect(await ns(b, 'pid')).toBe(await ns(a, 'pid'));
      expect(await uidMap(b)).toBe(await uidMap(a));
      expect(await ok(['exec', b, 'ps', 'x'])).toContain('sleep 301');
      for (const id of [a, b]) {
        // eci's /proc/uptime is the container's own: small, not the host's.
        const up = Number((await ok(['exec', id, 'cat', '/proc/uptime'])).split(' ')[0]);
        expect(up, `uptime in ${id}`).toBeLessThan(600);
      }
    } finally {
      await d.docker(['rm', '-f', b]);
      await d.docker(['rm', '-f', a]);
    }
    await nothingLeft([a, b]);
  });

  it('a web server in one member is reached on loopback from the other; removing the first keeps the second running', async () => {
    const a = await start([...RUN_FLAGS], ['sh', '-c', 'mkdir -p /www && echo hello-from-a > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']);
    const b = await start(['--network', `container:${a}`]);
    try {
      let body = '';
      await until('httpd in a to answer b on 127.0.0.1:8080', async () => {
        const r = await d.docker(['exec', b, 'wget', '-qO-', 'http://127.0.0.1:8080/']);
        body = r.stdout.trim();
        return r.code === 0;
      });
      expect(body).toBe('hello-from-a');
      // a goes first: b keeps the namespace and the range.
      await ok(['rm', '-f', a]);
      expect(await uidMap(b)).toBe(`0 ${FIRST} 65536`);
      expect(Object.values((await m.ps()).ranges)).toEqual([a]);
      expect((await m.ps()).containers.map((c) => c.id)).toEqual([b]);
    } finally {
      await d.docker(['rm', '-f', a]);
      await d.docker(['rm', '-f', b]);
    }
    await nothingLeft([a, b]);
  });

  it('between groups nothing is shared; in a group every member is vetted and gets its own /proc files', async () => {
    const a = await start([...RUN_FLAGS, '-m', '96m'], ['sleep', '302']);
    const b = await start(['--network', `container:${a}`, '--cap-add', 'SYS_ADMIN', '-m', '64m']);
    const c = await start([...RUN_FLAGS]); // another group
    try {
      // Per member: its own memory limit in /proc/meminfo, although it shares a's namespaces and range.
      expect(await ok(['exec', a, 'grep', 'MemTotal', '/proc/meminfo'])).toMatch(/^MemTotal: +98304 kB$/);
      expect(await ok(['exec', b, 'grep', 'MemTotal', '/proc/meminfo'])).toMatch(/^MemTotal: +65536 kB$/);
      // A member's mount is vetted (performed for it and audited under its own id).
      await ok(['exec', b, 'sh', '-c', 'mkdir -p /m && mount -t tmpfs t /m && umount /m']);
      await until(`a vetter.decision for ${b}`, async () => (await replay(m.natsUrl, `eci.v1.evt.vetter.${b}.>`)).some((e) => e.event.type === 'vetter.decision'));
      const mountEvents = (await replay(m.natsUrl, `eci.v1.evt.vetter.${b}.>`)).map((e) => e.event.data as { syscall?: string; verdict?: string });
      expect(mountEvents).toContainEqual(expect.objectContaining({ syscall: 'mount', verdict: 'performed' }));
      // The other group: its own range and namespaces, and its root cannot enter the group's files on the host.
      expect(await uidMap(c)).toBe(`0 ${SECOND} 65536`);
      expect(await ns(c, 'user')).not.toBe(await ns(a, 'user'));
      expect(await ns(c, 'net')).not.toBe(await ns(a, 'net'));
      expect(await ok(['exec', c, 'ps', 'x'])).not.toContain('sleep 302'); // a's processes are not c's to see
      const rootOf = (id: string) => join(m.dir, 'run', 'containers', id);
      const asUid = (uid: number, dir: string) => spawnSync('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', 'ls', dir]).status;
      expect(asUid(SECOND, rootOf(a)), "group 2's root listing a's run dir").not.toBe(0);
      expect(asUid(SECOND, rootOf(b)), "group 2's root listing b's run dir").not.toBe(0);
      expect(asUid(FIRST, rootOf(b)), "the group's root listing b's run dir").toBe(0);
    } finally {
      for (const id of [b, a, c]) await d.docker(['rm', '-f', id]);
    }
    await nothingLeft([a, b, c]);
  });

  it('refuses to join a runc container\'s namespaces with one line, creating nothing', async () => {
    const plain = await ok(['run', '-d', '--runtime=runc', ...RUN_FLAGS, img, 'sleep', '300']);
    try {
      for (const flag of ['--network', '--pid']) {
        const x = await d.docker(['run', '--rm', '--runtime=eci', flag, `container:${plain}`, img, 'true']);
        expect(x.code, `${flag} container:<runc>`).not.toBe(0);
        expect(x.stderr).toContain('eci containers can only share namespaces with other eci containers');
        expect(x.stderr).toContain('belongs to no eci container');
      }
      expect((await m.ps()).containers).toEqual([]);
      expect((await m.ps()).ranges).toEqual({});
    } finally {
      await d.docker(['rm', '-f', plain]);
    }
  });

  it('keeps the group across a manager kill -9 and restart; the range goes with the last member', async () => {
    const a = await start([...RUN_FLAGS]);
    const b = await start(['--network', `container:${a}`]);
    try {
      await m.kill9();
      await m.restart();
      const ps = await m.ps();
      expect(ps.containers.map((c) => [c.id, (c as { group?: string }).group]).sort()).toEqual([[a, a], [b, a]].sort());
      expect(Object.values(ps.ranges)).toEqual([a]);
      // A member joins after the restart too.
      const c = await start(['--network', `container:${b}`]);
      expect(await uidMap(c)).toBe(`0 ${FIRST} 65536`);
      expect(await ns(c, 'net')).toBe(await ns(a, 'net'));
      await ok(['rm', '-f', c]);
      await ok(['rm', '-f', a]);
      expect(Object.values((await m.ps()).ranges)).toEqual([a]); // b still holds it
      // Another manager restart with only b left: the range stays b's group's.
      await m.kill9();
      await m.restart();
      expect(Object.values((await m.ps()).ranges)).toEqual([a]);
      expect(await uidMap(b)).toBe(`0 ${FIRST} 65536`);
    } finally {
      await d.docker(['rm', '-f', a]);
      await d.docker(['rm', '-f', b]);
    }
    await nothingLeft([a, b]);
  });
});
