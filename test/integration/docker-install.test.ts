// `eci install` / `eci uninstall` against a real Docker engine: the daemon.json that install writes
// is the one dockerd starts with, dockerd then has runtime "eci" and runs a container through it;
// every other key survives; a second install changes nothing; uninstall gives back the file exactly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dockerdAvailable, importBusyboxImage, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { REPO, startManager, type TestManager } from '../helpers/manager.ts';
import { runCmd } from '../helpers/run.ts';

const avail = dockerdAvailable();
let m: TestManager;
let d: Dockerd;
let dir: string;
let daemonJson: string;
let original: string;
let afterInstall: string;
let installOut: string;
const unitDir = () => join(dir, 'systemd');
// install creates the readers' group: a throwaway one of this run, removed by uninstall (or below).
const GROUP = `eci-it${process.pid % 100000}`;

const eci = (args: string[]) =>
  runCmd(join(REPO, 'bin/eci'), [...args, '--daemon-json', daemonJson, '--unit-dir', unitDir()], { ...process.env, ECI_STATE_DIR: join(dir, 'state'), ECI_GROUP: GROUP }, undefined, 30_000);

describe.skipIf(!avail.ok)(`eci install through a real dockerd${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  beforeAll(async () => {
    dir = mkdtempSync('/tmp/eci-install-');
    m = await startManager();
    // The installed runtime is this checkout's bin/eci-runc, which finds the manager by ECI_SOCKET.
    d = await startDockerd({
      env: { ECI_SOCKET: m.socket },
      beforeStart: async (path) => {
        daemonJson = path;
        original = readFileSync(path, 'utf8');
        const r = await eci(['install']);
        expect(r.code, r.stderr).toBe(0);
        installOut = r.stdout;
        afterInstall = readFileSync(path, 'utf8');
      },
    });
  }, 120_000);

  afterAll(async () => {
    spawnSync('groupdel', [GROUP], { stdio: 'ignore' });
    await d?.stop();
    await m?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers runtime "eci" in the daemon.json dockerd starts with, keeping its other keys', async () => {
    expect(installOut).toMatch(/runtime "eci" -> .*\/bin\/eci-runc/);
    const cfg = JSON.parse(afterInstall);
    expect(cfg.runtimes.eci).toEqual({ path: join(REPO, 'bin/eci-runc') });
    expect(cfg['deprecated-key-path']).toBe(JSON.parse(original)['deprecated-key-path']);
    expect(existsSync(join(unitDir(), 'eci.service'))).toBe(true);
    expect(readFileSync(join(unitDir(), 'eci.service'), 'utf8')).toContain(`ExecStart=${join(REPO, 'bin/eci')} daemon`);
    const rt = await d.docker(['info', '--format', '{{json .Runtimes}}']);
    expect(JSON.parse(rt.stdout).eci).toMatchObject({ path: join(REPO, 'bin/eci-runc') });
  });

  it('dockerd runs a container through the installed runtime', async () => {
    const img = await importBusyboxImage(d);
    const r = await d.docker(['run', '--rm', '--network', 'none', '--runtime=eci', img, 'cat', '/proc/self/uid_map']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split(/\s+/)).toEqual(['0', expect.stringMatching(/^1\d{5,}$/), '65536']);
  });

  it('is idempotent, and uninstall restores the file exactly (also idempotent)', async () => {
    const again = await eci(['install']);
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe('nothing to do: already installed');
    expect(readFileSync(daemonJson, 'utf8')).toBe(afterInstall);
    const un = await eci(['uninstall']);
    expect(un.code, un.stderr).toBe(0);
    expect(un.stdout).toContain('runtime "eci" removed');
    expect(JSON.parse(readFileSync(daemonJson, 'utf8'))).toEqual(JSON.parse(original));
    expect(existsSync(join(unitDir(), 'eci.service'))).toBe(false);
    const un2 = await eci(['uninstall']);
    expect(un2.stdout.trim()).toBe('nothing to do: already uninstalled');
  });

  it('refuses a malformed daemon.json with one line and changes nothing', async () => {
    const bad = join(dir, 'bad.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(bad, '{"runtimes": ');
    const r = await runCmd(join(REPO, 'bin/eci'), ['install', '--daemon-json', bad, '--unit-dir', unitDir()], { ...process.env, ECI_STATE_DIR: join(dir, 'state') }, undefined, 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^eci: .*bad\.json: not valid JSON/);
    expect(readFileSync(bad, 'utf8')).toBe('{"runtimes": ');
    expect(existsSync(join(unitDir(), 'eci.service'))).toBe(false);
  });
});
