// Setuid/setgid vetting through Docker: a container cannot leave a setuid or setgid file on a volume
// (files there are uid 0 on the host disk: a host user running one would get root), by chmod, fchmod,
// fchmodat, fchmodat2, through a bind of the volume, or by creating it with such a mode; inside its own
// rootfs chmod u+s / g+s still work. Every vetted chmod is audited.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { installC } from '../helpers/cprog.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();

/** Every path under dir whose mode has S_ISUID or S_ISGID, with its mode. */
function setidFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const mode = statSync(join(dir, name)).mode;
    if (mode & 0o6000) out.push(`${name} 0${(mode & 0o7777).toString(8)}`);
  }
  return out;
}

describe.skipIf(!avail.ok)(`setuid/setgid vetting through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  let vol: string;
  let bin: string;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);
  const results = (out: string) => Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
  const freshVolume = () => {
    rmSync(vol, { recursive: true, force: true });
    mkdirSync(vol, { mode: 0o755 });
    chmodSync(vol, 0o755);
    for (const f of ['file', 'file2']) writeFileSync(join(vol, f), '#!/bin/sh\n', { mode: 0o755 });
  };

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    dir = mkdtempSync('/tmp/ecis-');
    chmodSync(dir, 0o755);
    vol = join(dir, 'vol');
    bin = join(dir, 'bin');
    await installC(bin, 'suid_plant');
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses chmod u+s and g+s on a volume with EPERM, and the host file keeps its mode', async () => {
    freshVolume();
    const r = await run('-v', `${vol}:/v`, img, 'sh', '-c',
      'chmod u+s /v/file; echo "u+s=$?"; chmod g+s /v/file2; echo "g+s=$?"; chmod 0700 /v/file2; echo "plain=$?"; ls -l /v');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('u+s=1');
    expect(r.stdout).toContain('g+s=1');
    expect(r.stdout).toContain('plain=0'); // ordinary chmods are untouched
    expect(r.stderr).toContain('chmod: /v/file: Operation not permitted');
    expect(r.stderr).toContain('chmod: /v/file2: Operation not permitted');
    expect(statSync(join(vol, 'file')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(vol, 'file2')).mode & 0o7777).toBe(0o700);
    expect(setidFiles(vol)).toEqual([]);
  });

  it('lets chmod u+s and g+s work in the container rootfs', async () => {
    const r = await run(img, 'sh', '-c',
      'touch /tmp/file /tmp/file2 && chmod 755 /tmp/file /tmp/file2 && chmod u+s /tmp/file && chmod g+s /tmp/file2 && stat -c "%a %n" /tmp/file /tmp/file2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('4755 /tmp/file');
    expect(r.stdout).toContain('2755 /tmp/file2');
  });

  it('refuses fchmod, fchmodat, fchmodat2 and setuid/setgid creation on a volume; nothing setid is left on the host', async () => {
    freshVolume();
    const r = await run('-v', `${vol}:/v`, '-v', `${bin}:/eci-bin:ro`, img, '/eci-bin/suid_plant', '/v');
    expect(r.code, r.stderr).toBe(0);
    const x = results(r.stdout);
    console.log(`setuid plant attempts on a volume under eci: ${JSON.stringify(x)}`);
    expect(x.fchmod_plain).toBe('ok');
    for (const k of ['fchmod_suid', 'fchmod_sgid', 'fchmodat_suid', 'fchmodat_sgid', 'fchmodat_libc_nofollow_suid',
      'open_creat_suid', 'openat_creat_sgid', 'o_tmpfile_suid', 'creat_suid', 'mknod_suid']) expect(x[k], k).toBe('EPERM');
    // fchmodat2: vetted like fchmodat where libseccomp knows it, else refused by the filter (EPERM/ENOSYS)
    for (const k of ['fchmodat2_suid', 'fchmodat2_nofollow_sgid']) expect(['EPERM', 'ENOSYS'], k).toContain(x[k]);
    expect(x.openat2_creat_suid).toBe('ENOSYS');
    expect(x.mkdir_sgid).toBe('ok'); // the kernel drops S_ISGID from mkdir's mode
    expect(setidFiles(vol)).toEqual([]);
  });

  it('still performs setuid chmods in the rootfs; creation with such a mode is refused while a writable host directory is shared', async () => {
    freshVolume();
    const r = await run('-v', `${vol}:/v`, '-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c', 'mkdir /tmp/x && /eci-bin/suid_plant /tmp/x && stat -c "%a %n" /tmp/x/fchmod /tmp/x/f');
    expect(r.code, r.stderr).toBe(0);
    const x = results(r.stdout.split('\n').filter((l) => !l.includes('/tmp/x/')).join('\n'));
    for (const k of ['fchmod_suid', 'fchmod_sgid', 'fchmodat_suid', 'fchmodat_sgid', 'fchmodat_libc_nofollow_suid']) expect(x[k], k).toBe('ok');
    expect(r.stdout).toContain('2755 /tmp/x/fchmod');
    for (const k of ['open_creat_suid', 'openat_creat_sgid', 'creat_suid', 'mknod_suid']) expect(x[k], k).toBe('EPERM');
  });

  it('leaves open/openat/creat unfiltered where no file the container makes can reach a host user', async () => {
    // No writable host directory, and the rootfs writes land under dockerd's data root, which only
    // root may search: the creation rules (the only argument-filtered data-path rules) are left out.
    expect(statSync(d.dir).mode & 0o011).toBe(0); // mkdtemp: 0700, root's

    const r = await run('-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c', 'mkdir /tmp/x && /eci-bin/suid_plant /tmp/x >/dev/null; stat -c "%a %n" /tmp/x/open /tmp/x/creat /tmp/x/fchmod');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('4755 /tmp/x/open'); // made in the container's own, root-only storage
    expect(r.stdout).toContain('4755 /tmp/x/creat');
    expect(r.stdout).toContain('2755 /tmp/x/fchmod');
  });

  it('refuses setuid on a bind of the volume made inside the container', async () => {
    freshVolume();
    const r = await run('--cap-add', 'SYS_ADMIN', '-v', `${vol}:/v`, img, 'sh', '-c',
      'mkdir /tmp/b && mount --bind /v /tmp/b && chmod u+s /tmp/b/file; echo "bind=$?"');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('bind=1');
    expect(r.stderr).toContain('Operation not permitted');
    expect(setidFiles(vol)).toEqual([]);
  });

  it('does the same without an engine profile (seccomp=unconfined: NOTIFY/ERRNO rules over an ALLOW default)', async () => {
    freshVolume();
    const r = await run('--security-opt', 'seccomp=unconfined', '-v', `${vol}:/v`, '-v', `${bin}:/eci-bin:ro`, img, 'sh', '-c',
      '/eci-bin/suid_plant /v; mkdir /tmp/x && /eci-bin/suid_plant /tmp/x >/dev/null && stat -c "%a %n" /tmp/x/fchmod');
    expect(r.code, r.stderr).toBe(0);
    const x = results(r.stdout.split('\n').filter((l) => !l.includes('/tmp/x/')).join('\n'));
    console.log(`setuid plant attempts on a volume without a profile: ${JSON.stringify(x)}`);
    for (const k of ['fchmod_suid', 'fchmodat_suid', 'fchmodat_libc_nofollow_suid', 'open_creat_suid', 'creat_suid', 'mknod_suid']) expect(x[k], k).toBe('EPERM');
    expect(r.stdout).toContain('2755 /tmp/x/fchmod'); // performed in the rootfs
    expect(setidFiles(vol)).toEqual([]);
  });

  it('audits the vetted chmods', async () => {
    freshVolume();
    const id = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', '-v', `${vol}:/v`, img, 'sh', '-c',
      'chmod u+s /v/file; touch /tmp/t; chmod g+s /tmp/t; true'])).stdout.trim();
    await d.docker(['wait', id]);
    await d.docker(['rm', id]);
    const ev = (await replay(m.natsUrl, `eci.v1.evt.vetter.${id}.decision`)).map((e) => e.event.data as Record<string, unknown>);
    const path = (e: Record<string, unknown>) => (e.strings as Record<string, string>).path;
    expect(ev.find((e) => path(e) === '/v/file')).toMatchObject({ verdict: 'refused', errno: 'EPERM', flags: '04755' });
    expect(ev.find((e) => path(e) === '/tmp/t')).toMatchObject({ verdict: 'performed', flags: '02644' });
    expect(setidFiles(vol)).toEqual([]);
  });
});
