// Real engine setups behave as under runc (issue 14): a dockerd whose data-root is NOT
// /var/lib/docker (and not shared with containers), Podman with its DEFAULT rootful storage, and
// containerd. `--init`, container root writing /etc/hosts, resolv.conf and hostname (idmapped:
// root-owned inside, the write lands in the engine's file), a named volume written by one container
// and read by the next, `/etc/localtime:ro` allowed and read-write refused, and another container's
// engine dir refused by name, also through a symlink or a parent.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerdOf, importImageToContainerd, type Containerd } from '../helpers/containerd.ts';
import { dockerdAvailable, importBusyboxImage, RUN_FLAGS, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startManager, type TestManager } from '../helpers/manager.ts';
import { importPodmanBusybox, podmanAvailable, startPodman, type Podman } from '../helpers/podman.ts';

const lines = (s: string) => s.trim().split('\n').map((l) => l.trim());

/** Polls `read` until it holds `want` (bounded; says what it waited for). */
async function waitFor(what: string, read: () => string, want: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 300; i++) {
    try {
      last = read();
      if (last.includes(want)) return;
    } catch { /* not there yet */ }
    await sleep(100);
  }
  throw new Error(`waited 30 s for ${what} to contain ${JSON.stringify(want)}; last: ${JSON.stringify(last)}`);
}

/** A manager whose fileSharing is one dir under /var/tmp: the engines' data under /tmp is not shared. */
function sharedDirSettings(): { dir: string; settings: string; share: string } {
  const dir = mkdtempSync('/var/tmp/ecie-');
  chmodSync(dir, 0o755);
  const share = join(dir, 'share');
  mkdirSync(share);
  const settings = join(dir, 'settings.json');
  writeFileSync(settings, JSON.stringify({ fileSharing: [share] }));
  return { dir, settings, share };
}

const dockerAvail = dockerdAvailable();

describe.skipIf(!dockerAvail.ok)(`Docker with its data-root elsewhere, and containerd${dockerAvail.ok ? '' : ` (skipped: ${dockerAvail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dataRoot: string;
  let s: ReturnType<typeof sharedDirSettings>;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    s = sharedDirSettings();
    m = await startManager({ env: { ECI_SETTINGS: s.settings } });
    d = await startDockerd({ runtimes: { eci: m.runtime } });
    img = await importBusyboxImage(d);
    dataRoot = await ok(['info', '-f', '{{.DockerRootDir}}']);
  });
  afterAll(async () => {
    await d?.stop();
    await m?.destroy();
    if (s) rmSync(s.dir, { recursive: true, force: true });
  });

  it('runs with a data-root that is neither /var/lib/docker nor shared', () => {
    expect(dataRoot).not.toBe('/var/lib/docker');
    expect(dataRoot.startsWith(s.share)).toBe(false);
  });

  it('docker run --init: the init binary is mounted read-only and runs as PID 1', async () => {
    const r = await run('--init', img, 'sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; stat -c %u /sbin/docker-init; touch /sbin/docker-init 2>&1 || echo refused');
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toMatch(/^\/sbin\/docker-init -- sh -c/);
    expect(out[1]).toBe('0');
    expect(out.at(-1)).toBe('refused');
  });

  it('container root owns and writes /etc/hosts, resolv.conf and hostname; the writes land in the engine files', async () => {
    const id = await ok(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c',
      'for f in hosts resolv.conf hostname; do echo "# eci-wrote-$f" >> /etc/$f || exit 1; done; sleep 300']);
    try {
      const paths = lines(await ok(['inspect', '-f', '{{.HostsPath}}\n{{.ResolvConfPath}}\n{{.HostnamePath}}', id]));
      expect(paths.every((p) => p.startsWith(`${dataRoot}/containers/${id}/`))).toBe(true);
      for (const [p, f] of paths.map((p, i) => [p, ['hosts', 'resolv.conf', 'hostname'][i]])) {
        await waitFor(`the host's ${p}`, () => readFileSync(p, 'utf8'), `# eci-wrote-${f}`);
        expect(statSync(p).uid, p).toBe(0); // the write landed as host root: the bind is idmapped
      }
      expect(lines(await ok(['exec', id, 'stat', '-c', '%u:%g', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname']))).toEqual(['0:0', '0:0', '0:0']);

      // Another container's engine dir: refused by name, through a symlink and through a parent.
      const link = join(s.share, 'other-hosts');
      symlinkSync(paths[0], link);
      const cases: [string, string][] = [
        [`${paths[0]}:/x`, `can't mount ${paths[0]} because it's configured as a restricted host mount`],
        [`${link}:/x`, `can't mount ${link} because it's configured as a restricted host mount (it resolves to ${paths[0]}`],
        [`${dataRoot}/containers/${id}:/x`, "because it's configured as a restricted host mount"],
        [`${dataRoot}:/x`, `can't mount ${dataRoot} because it contains ${dataRoot}/containers`],
      ];
      for (const [v, msg] of cases) {
        const r = await run('-v', v, img, 'true');
        expect(r.code, v).not.toBe(0);
        expect(r.stderr, v).toContain(msg);
      }
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  });

  it('a named volume in the data-root is written by one container and read by the next (idmapped, uid 0 on disk)', async () => {
    const w = await run('-v', 'eci-engine-vol:/v', img, 'sh', '-c', 'echo from-first > /v/f');
    expect(w.code, w.stderr).toBe(0);
    const r = await run('-v', 'eci-engine-vol:/v', img, 'sh', '-c', 'cat /v/f; stat -c %u:%g /v/f');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual(['from-first', '0:0']);
    const onDisk = statSync(join(dataRoot, 'volumes/eci-engine-vol/_data/f'));
    expect([onDisk.uid, onDisk.gid]).toEqual([0, 0]);
    await ok(['volume', 'rm', 'eci-engine-vol']);
  });

  it('mounts /etc/localtime read-only (readOnlySystemFiles) and refuses it read-write', async () => {
    const r = await run('-v', '/etc/localtime:/etc/localtime:ro', img, 'sh', '-c', 'head -c 4 /etc/localtime; echo; echo x > /etc/localtime 2>/dev/null || echo refused');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual(['TZif', 'refused']);
    const rw = await run('-v', '/etc/localtime:/x', img, 'true');
    expect(rw.code).not.toBe(0);
    expect(rw.stderr).toContain("can't mount /etc/localtime read-write because it is a read-only system file (readOnlySystemFiles)");
  });

  describe('containerd (ctr)', () => {
    let c: Containerd;
    let ref: string;
    beforeAll(async () => {
      c = containerdOf(d);
      ref = await importImageToContainerd(d, c, img);
    });
    afterAll(async () => {
      await c?.cleanup();
    });
    it('mounts /etc/localtime read-only and refuses it read-write', async () => {
      const mount = (o: string) => ['--mount', `type=bind,src=/etc/localtime,dst=/etc/localtime,options=rbind:${o}`];
      const r = await c.ctr(['run', '--rm', ...c.runFlags(m.runtime), ...mount('ro'), ref, `eci-eng-${process.pid}-1`, 'head', '-c', '4', '/etc/localtime']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('TZif');
      const rw = await c.ctr(['run', '--rm', ...c.runFlags(m.runtime), ...mount('rw'), ref, `eci-eng-${process.pid}-2`, 'true']);
      expect(rw.code).not.toBe(0);
      expect(rw.stderr).toContain('read-only system file');
    });
  });
});

const podmanAvail = podmanAvailable();

describe.skipIf(!podmanAvail.ok)(`Podman with its default storage${podmanAvail.ok ? '' : ` (skipped: ${podmanAvail.reason})`}`, () => {
  let m: TestManager;
  let p: Podman;
  let img: string;
  let s: ReturnType<typeof sharedDirSettings>;
  const vol = `eci-engine-vol-${process.pid}`;
  const run = (...args: string[]) => p.podman(['--runtime', m.runtime, 'run', '--rm', ...p.runFlags, ...args]);
  const ok = async (args: string[]) => {
    const r = await p.podman(['--runtime', m.runtime, ...args]);
    expect(r.code, `podman ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    s = sharedDirSettings();
    m = await startManager({ env: { ECI_SETTINGS: s.settings } });
    p = await startPodman({ defaultStorage: true });
    p.created!.volumes.push(vol);
    img = await importPodmanBusybox(p, `eci-engine-busybox-${process.pid}`);
  });
  afterAll(async () => {
    await p?.stop();
    await m?.destroy();
    if (s) rmSync(s.dir, { recursive: true, force: true });
  });

  it('uses the default graphroot and runroot', async () => {
    expect(await ok(['info', '-f', '{{.Store.GraphRoot}} {{.Store.RunRoot}}'])).toBe('/var/lib/containers/storage /run/containers/storage');
  });

  it('container root owns and writes /etc/hosts and /etc/hostname in the userdata dir; another container\'s is refused', async () => {
    const id = await ok(['run', '-d', ...p.runFlags, img, 'sh', '-c', 'for f in hosts hostname; do echo "# eci-wrote-$f" >> /etc/$f || exit 1; done; sleep 300']);
    try {
      const userdata = `/run/containers/storage/overlay-containers/${id}/userdata`;
      for (const f of ['hosts', 'hostname']) {
        await waitFor(`${userdata}/${f}`, () => readFileSync(join(userdata, f), 'utf8'), `# eci-wrote-${f}`);
        expect(statSync(join(userdata, f)).uid).toBe(0);
      }
      expect(lines(await ok(['exec', id, 'stat', '-c', '%u:%g', '/etc/hosts', '/etc/hostname']))).toEqual(['0:0', '0:0']);
      const link = join(s.share, 'podman-hosts');
      symlinkSync(join(userdata, 'hosts'), link);
      for (const [v, msg] of [
        [`${userdata}/hosts:/x`, "because it's configured as a restricted host mount"],
        [`${link}:/x`, `(it resolves to ${userdata}/hosts`],
        [`/var/lib/containers/storage/overlay-containers/${id}/userdata:/x`, "because it's configured as a restricted host mount"],
      ]) {
        const r = await run('-v', v, img, 'true');
        expect(r.code, v).not.toBe(0);
        expect(r.stderr, v).toContain(msg);
      }
    } finally {
      await p.podman(['rm', '-f', '-t', '0', id]);
    }
  });

  it('a named volume is written by one container and read by the next', async () => {
    const w = await run('-v', `${vol}:/v`, img, 'sh', '-c', 'echo from-first > /v/f');
    expect(w.code, w.stderr).toBe(0);
    const r = await run('-v', `${vol}:/v`, img, 'sh', '-c', 'cat /v/f; stat -c %u:%g /v/f');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual(['from-first', '0:0']);
    expect(statSync(`/var/lib/containers/storage/volumes/${vol}/_data/f`).uid).toBe(0);
  });

  it('mounts /etc/localtime read-only and refuses it read-write', async () => {
    const r = await run('-v', '/etc/localtime:/etc/localtime:ro', img, 'head', '-c', '4', '/etc/localtime');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('TZif');
    const rw = await run('-v', '/etc/localtime:/x', img, 'true');
    expect(rw.code).not.toBe(0);
    expect(rw.stderr).toContain('read-only system file');
  });
});
