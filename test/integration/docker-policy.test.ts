// The administrator's policy through a real Docker engine: restricted host paths (also through
// symlinks and parents), shared paths, the engine socket for trusted images only, idmapped volumes
// whose files stay 0..65535 on disk, read-only volumes, and settings reloads.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, importBusyboxImage, RUN_FLAGS, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { FIRST, SECOND, REPO, startManager, type TestManager } from '../helpers/manager.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();

describe.skipIf(!avail.ok)(`admin policy through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  let settingsFile: string;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);
  const settings = (o: object) => writeFileSync(settingsFile, JSON.stringify(o, null, 2));
  let base: Record<string, unknown>;

  beforeAll(async () => {
    dir = mkdtempSync('/var/tmp/ecip-'); // outside the default shared paths on purpose
    chmodSync(dir, 0o755);
    for (const s of ['share', 'share/vol', 'restricted', 'outside']) mkdirSync(join(dir, s), { recursive: true });
    writeFileSync(join(dir, 'restricted/daemon.json'), '{}');
    symlinkSync(join(dir, 'restricted/daemon.json'), join(dir, 'share/link'));
    settingsFile = join(dir, 'settings.json');
    d = await startDockerd({});
    base = {
      fileSharing: [join(dir, 'share'), '/tmp'],
      restrictedPaths: [join(dir, 'restricted')],
      engineSockets: [d.socket],
      dockerSocketMount: { imageList: { images: ['eci-trusted:*'] } },
    };
    settings(base);
    m = await startManager({ env: { ECI_SETTINGS: settingsFile } });
    await d.stop();
    d = await startDockerd({ runtimes: { eci: m.runtime } });
    base.engineSockets = [d.socket];
    settings(base);
    img = await importBusyboxImage(d);
    expect((await d.docker(['tag', img, 'eci-trusted:1'])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1200)); // settings reload (polled every 500 ms)
  });
  afterAll(async () => {
    await d?.stop();
    await m?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses restricted host paths by name, also through a symlink, a parent or ..', async () => {
    const cases: [string, string][] = [
      ['/etc/docker:/mnt', "can't mount /etc/docker because it's configured as a restricted host mount"],
      [`${dir}/restricted/daemon.json:/mnt/daemon.json`, `can't mount ${dir}/restricted/daemon.json because it's configured as a restricted host mount`],
      [`${dir}/share/link:/mnt/daemon.json`, `can't mount ${dir}/share/link because it's configured as a restricted host mount (it resolves to ${dir}/restricted/daemon.json`],
      [`${dir}:/mnt`, `can't mount ${dir} because it contains ${dir}/`], // restricted/ or the settings file: both are
      [`${dir}/share/../restricted:/mnt`, `because it's configured as a restricted host mount`],
      ['/proc/sys:/mnt', "can't mount /proc/sys because it's configured as a restricted host mount"],
    ];
    for (const [v, msg] of cases) {
      const r = await run('-v', v, img, 'true');
      expect(r.code, v).not.toBe(0);
      expect(r.stderr, v).toContain(msg);
    }
    const out = await run('-v', `${dir}/outside:/mnt`, img, 'true');
    expect(out.stderr).toContain(`can't mount ${dir}/outside because it is not in the host paths shared with containers`);
    expect((await m.ps()).ranges).toEqual({});
  });

  it('mounts shared paths, idmapped: files written by container root are uid 0 on disk, whatever the range', async () => {
    const vol = join(dir, 'share/vol');
    // Container A holds the first range while B (the second) writes; both read each other's files.
    const a = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', '-v', `${vol}:/v`, img, 'sh', '-c', 'echo from-a > /v/a; sleep 300'])).stdout.trim();
    try {
      for (let i = 0; i < 50; i++) { try { statSync(join(vol, 'a')); break; } catch { await new Promise((r) => setTimeout(r, 100)); } }
      const b = await run('-v', `${vol}:/v`, img, 'sh', '-c', 'cat /proc/self/uid_map; cat /v/a; echo from-b > /v/b; stat -c %u:%g /v/a /v/b');
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual([`0 ${SECOND} 65536`, 'from-a', '0:0', '0:0', '']);
      for (const f of ['a', 'b']) expect([statSync(join(vol, f)).uid, statSync(join(vol, f)).gid]).toEqual([0, 0]);
      expect((await d.docker(['exec', a, 'cat', '/v/b'])).stdout).toBe('from-b\n');
    } finally {
      await d.docker(['rm', '-f', a]);
    }
    // A container restarted with a new range reads what it wrote before.
    const again = await run('-v', `${vol}:/v`, img, 'cat', '/v/a');
    expect(again.stdout).toBe('from-a\n');
  });

  it('idmaps named volumes, keeps :ro read-only, and mounts volumes nosuid,nodev', async () => {
    expect((await d.docker(['volume', 'create', 'ecivol'])).code).toBe(0);
    const w = await run('-v', 'ecivol:/data', img, 'sh', '-c', 'echo hi > /data/f && stat -c %u /data/f');
    expect(w.stdout, w.stderr).toBe('0\n');
    const mp = (await d.docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', 'ecivol'])).stdout.trim();
    expect(statSync(join(mp, 'f')).uid).toBe(0);
    const ro = await run('-v', `${dir}/share/vol:/v:ro`, img, 'sh', '-c', 'touch /v/x; grep " /v " /proc/self/mountinfo');
    expect(ro.stderr).toMatch(/Read-only file system/);
    const opts = ro.stdout.split(' ')[5];
    expect(opts.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
    await d.docker(['volume', 'rm', 'ecivol']);
  });

  it('judges a local volume that binds a host directory (-o bind,device=DIR) as a bind of DIR', async () => {
    const mk = async (name: string, device: string) =>
      expect((await d.docker(['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', `device=${device}`, name])).code).toBe(0);
    await mk('eci-etc', '/etc');
    await mk('eci-outside', `${dir}/outside`);
    await mk('eci-shared', `${dir}/share/vol`);
    try {
      const etc = await run('-v', 'eci-etc:/x', img, 'cat', '/x/hostname');
      expect(etc.code).not.toBe(0);
      expect(etc.stderr).toContain('because it contains /etc/docker, which is configured as a restricted host mount');
      const out = await run('-v', 'eci-outside:/x', img, 'true');
      expect(out.stderr).toContain(`the volume binds ${dir}/outside, which is not in the host paths shared with containers`);
      const ok = await run('-v', 'eci-shared:/x', img, 'sh', '-c', 'echo v > /x/from-volume && stat -c %u /x/from-volume');
      expect(ok.stdout, ok.stderr).toBe('0\n');
      expect(statSync(join(dir, 'share/vol/from-volume')).uid).toBe(0);
      expect((await m.ps()).ranges).toEqual({});
    } finally {
      await d.docker(['volume', 'rm', 'eci-etc', 'eci-outside', 'eci-shared']);
    }
  });

  it('mounts the engine socket only into trusted images', async () => {
    const denied = await run('-v', `${d.socket}:/var/run/docker.sock`, img, 'true');
    expect(denied.stderr).toContain(`can't mount ${d.socket} because the engine socket may only be mounted into trusted images`);
    const ok = await run('-v', `${d.socket}:/var/run/docker.sock`, 'eci-trusted:1', 'sh', '-c', 'test -S /var/run/docker.sock && echo socket');
    expect(ok.stdout, ok.stderr).toBe('socket\n');
  });

  it('rejects a bad settings file naming the field, keeps the old settings, and reports both on the bus', async () => {
    settings({ ...base, fileSharing: ['relative/path'] });
    await new Promise((r) => setTimeout(r, 1500));
    // The settings in force still apply: the shared dir mounts, the outside one is refused.
    expect((await run('-v', `${dir}/share/vol:/v`, img, 'true')).code).toBe(0);
    expect((await run('-v', `${dir}/outside:/v`, img, 'true')).code).not.toBe(0);
    settings({ ...base, fileSharing: [...(base.fileSharing as string[]), join(dir, 'outside')] });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await run('-v', `${dir}/outside:/v`, img, 'true')).code).toBe(0);
    const events = await replay(m.natsUrl, 'eci.v1.evt.settings.>');
    const rejected = events.find((e) => e.event.type === 'settings.rejected');
    expect((rejected?.event.data as { error: string }).error).toContain('fileSharing[0]: expected an absolute path, got "relative/path"');
    expect(events.at(-1)?.event.type).toBe('settings.changed');
    settings(base);
  });

  it('eci settings validate names the bad field in one line', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"idRange": {"size": 10}}');
    let err = '';
    try { execFileSync(process.execPath, [join(REPO, 'bin/eci'), 'settings', 'validate', bad], { stdio: 'pipe' }); } catch (e) { err = String((e as { stderr: Buffer }).stderr); }
    expect(err.trim()).toBe(`eci: ${bad}: idRange.size: expected an integer from 65536 to 2147483647, got 10`);
    expect(execFileSync(process.execPath, [join(REPO, 'bin/eci'), 'settings', 'validate', settingsFile]).toString()).toContain('valid');
  });
});
