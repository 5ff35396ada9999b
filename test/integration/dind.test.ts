// Docker-in-Docker under eci (issue 16), with a Debian 12 image built from Debian's docker.io:
// `docker run -d --runtime=eci IMAGE dockerd`, with and without --privileged. The inner dockerd uses
// overlay2 on the host-backed /var/lib/docker eci gives it, loads an image, runs containers (also with
// a -v volume), and its containers stay inside the outer container's user namespace and range: inner
// --privileged and host-namespace flags reach no further than the outer container. Removing the
// outer container removes its inner data from the host.
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildC, gccMissing } from '../helpers/cprog.ts';
import { debianImageSkipReason, importDebian } from '../helpers/debian-image.ts';
import { dockerdAvailable, importBusyboxImage, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { FIRST, startManager, type TestManager } from '../helpers/manager.ts';
import { until } from '../helpers/bundle.ts';
import { privilegedFlags } from '../helpers/host-caps.ts';

const avail = dockerdAvailable();
const skip = !avail.ok ? avail.reason : debianImageSkipReason() || gccMissing || '';

describe.skipIf(skip)(`Docker-in-Docker under eci${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let bb: string;
  let dir: string;
  // A local user, made by the test, tries the inner engine's data on the host.
  const user = `ecid${process.pid % 100000}`;
  const asUser = (cmd: string) => spawnSync('runuser', ['-u', user, '--', 'sh', '-c', cmd], { encoding: 'utf8' });

  beforeAll(async () => {
    spawnSync('userdel', [user]);
    const u = spawnSync('useradd', ['-M', '-s', '/bin/sh', user], { encoding: 'utf8' });
    if (u.status !== 0) throw new Error(`useradd ${user}: ${u.stderr}`);
    m = await startManager();
    d = await startDockerd({ runtimes: { eci: m.runtime } });
    img = await importDebian(d, 'docker');
    bb = await importBusyboxImage(d);
    dir = mkdtempSync('/tmp/eci-dind-'); // /tmp is shared with containers in the test settings
    chmodSync(dir, 0o755);
    expect((await d.docker(['save', bb, '-o', join(dir, 'busybox.tar')])).code).toBe(0);
    chmodSync(join(dir, 'busybox.tar'), 0o644);
    copyFileSync(await buildC('attack-priv'), join(dir, 'attack-priv'));
    chmodSync(join(dir, 'attack-priv'), 0o755);
  }, 600_000);

  afterAll(async () => {
    spawnSync('userdel', [user]);
    await d?.stop();
    await m?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts the outer container and waits until its dockerd answers; returns its id. */
  async function outer(extra: string[]): Promise<string> {
    const r = await d.docker(['run', '-d', '--runtime=eci', '-v', `${dir}:/host:ro`, ...extra, img, 'dockerd']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    await until(async () => (await d.docker(['exec', id, 'docker', 'version', '--format', '{{.Server.Version}}'])).code === 0, 'the inner dockerd to answer', 60_000)
      .catch(async (e) => { throw new Error(`${(e as Error).message}\n${(await d.docker(['logs', '--tail', '30', id])).stderr}`); });
    return id;
  }
  const inner = (id: string, ...args: string[]) => d.docker(['exec', id, 'docker', ...args]);

  for (const mode of ['--privileged', 'no flags'] as const) {
    it(`runs dockerd with overlay2, loads an image and runs nested containers (${mode})`, async () => {
      const id = await outer(mode === '--privileged' ? ['--privileged'] : []);
      try {
        const info = await inner(id, 'info', '--format', '{{.Driver}}');
        expect(info.stdout.trim(), info.stderr).toBe('overlay2');
        const load = await inner(id, 'load', '-i', '/host/busybox.tar');
        expect(load.code, load.stderr).toBe(0);
        const outerMap = (await d.docker(['exec', id, 'cat', '/proc/self/uid_map'])).stdout.trim().split(/\s+/);
        expect(outerMap.slice(1)).toEqual([String(FIRST), '65536']);
        const run = await inner(id, 'run', '--rm', bb, 'sh', '-c', 'test -e /sys/class/net/eth0 && id -u && cat /proc/self/uid_map'); // on the inner default bridge
        expect(run.code, run.stderr).toBe(0);
        const [uid, ...map] = run.stdout.trim().split(/\s+/);
        expect(uid).toBe('0');
        expect(map).toEqual(outerMap); // the same user namespace: the outer container's range
        // An inner volume: a directory of the outer container, written by an inner container.
        const vol = await inner(id, 'run', '--rm', '--network', 'none', '-v', '/srv:/data', bb, 'sh', '-c', 'echo inner > /data/f');
        expect(vol.code, vol.stderr).toBe(0);
        expect((await d.docker(['exec', id, 'cat', '/srv/f'])).stdout).toBe('inner\n');
        // Where the inner engine keeps its data on the host: eci's state dir, owned (on disk) by root.
        const data = join(m.dir, 'state', 'inner', (await d.docker(['inspect', '-f', '{{.Id}}', id])).stdout.trim(), 'docker');
        expect(existsSync(join(data, 'overlay2'))).toBe(true);
        for (const cmd of [`ls ${data}`, `ls ${data}/overlay2`, `touch ${data}/x`, `ls ${join(m.dir, 'state', 'inner')}`]) {
          const r = asUser(cmd);
          expect(r.status, `${cmd} as ${user}`).not.toBe(0);
          expect(r.stderr, cmd).toMatch(/Permission denied/);
        }
      } finally {
        await d.docker(['rm', '-f', id]);
      }
      // ps first: `docker rm` is answered once eci's mounts are down, the rest of the release (range, run
      // dir, inner data) follows within ms, and ps waits for releases under way.
      expect((await m.ps()).ranges).toEqual({});
      expect(readdirSync(join(m.dir, 'state', 'inner'))).toEqual([]);
    }, 240_000);
  }

  it('gives an inner --privileged or host-namespace container no more than the outer container has', async () => {
    const id = await outer([]);
    try {
      expect((await inner(id, 'load', '-i', '/host/busybox.tar')).code).toBe(0);
      // The outer container's view of the host's kernel, and then an inner --privileged one with
      // the inner host's pid, ipc and network namespaces: the same refusals. (Where this host's bounding set
      // lacks a capability, --privileged fails under any runc: its closest equivalent then.)
      const probe = ['/host/attack-priv', '/dev/vda', '254:0', 'ext4', 'etc/hostname'];
      // exec --privileged: the outer container's full capabilities (a plain exec gets Docker's default set).
      const fromOuter = await d.docker(['exec', '--privileged', id, ...probe]);
      const fromInner = await inner(id, 'run', '--rm', ...privilegedFlags(), '--pid=host', '--ipc=host', '--network=host', '-v', '/host:/host:ro', bb, ...probe);
      expect(fromInner.code, fromInner.stderr).toBe(0);
      const lines = (s: string) => Object.fromEntries(s.trim().split('\n').map((l) => [l.split(' ')[0], l.split(' ')[1]]));
      const o = lines(fromOuter.stdout);
      const i = lines(fromInner.stdout);
      expect(Object.keys(i).length).toBeGreaterThan(5);
      for (const [name, result] of Object.entries(i)) {
        if (result === 'ok') expect(o[name], `${name}: allowed in the inner container, so it must be in the outer one`).toBe('ok');
      }
      // The host-kernel reaches, each refused from the inner container too.
      for (const name of ['init_module', 'finit_module', 'bpf_prog_load', 'sysrq_open_w', 'sysctl_open_w_core_pattern', 'mount_hostdisk', 'blockdev_read', 'kcore_read', 'release_agent_write']) {
        expect(i[name], name).toBeDefined();
        expect(i[name], name).not.toBe('ok');
      }
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  }, 240_000);
});
