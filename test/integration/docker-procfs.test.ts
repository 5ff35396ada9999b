// /proc emulation through Docker: the container's own uptime, swaps and memory limit, also on a
// second proc mount, and the emulated files cannot be unmounted from inside.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import { REPO, type TestManager } from '../helpers/manager.ts';

const avail = dockerdAvailable();

describe.skipIf(!avail.ok)(`/proc emulation through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  const run = (...args: string[]) => d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', ...args]);

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
  });

  it("shows the container's uptime, no swap, and its memory limit", async () => {
    const hostUptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const r = await run('--memory', '256m', img, 'sh', '-c', 'cat /proc/uptime; cat /proc/swaps; grep MemTotal /proc/meminfo');
    expect(r.code, r.stderr).toBe(0);
    const [uptime, swapsHeader, ...rest] = r.stdout.trim().split('\n');
    const up = Number(uptime.split(' ')[0]);
    expect(up).toBeLessThan(10);
    expect(hostUptime).toBeGreaterThan(up);
    expect(swapsHeader).toMatch(/^Filename\s+Type\s+Size\s+Used\s+Priority$/);
    expect(rest.at(-1)).toMatch(/^MemTotal:\s+262144 kB$/);
  });

  it('eci check passes every property against this engine', async () => {
    const r = spawnSync(process.execPath, [join(REPO, 'bin/eci'), 'check', '--host', `unix://${d.socket}`, '--image', img], { encoding: 'utf8', env: { ...process.env, ...m.env } });
    console.log(r.stdout);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PROPERTY\s+EXPECTED\s+OBSERVED\s+PASS/);
    expect(r.stdout).toMatch(/(\d+) passed, 0 failed/);
    expect(r.stdout).not.toMatch(/\sNO$/m);
  });

  it('a proc filesystem the container mounts itself shows the emulated files too', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', 'mkdir -p /tmp/p && mount -t proc proc /tmp/p && cat /tmp/p/uptime && cat /tmp/p/swaps | wc -l');
    expect(r.code, r.stderr).toBe(0);
    const [uptime, swapLines] = r.stdout.trim().split('\n');
    expect(Number(uptime.split(' ')[0])).toBeLessThan(10);
    expect(swapLines.trim()).toBe('1');
  });

  it('refuses to unmount an emulated file from inside', async () => {
    const r = await run('--cap-add', 'SYS_ADMIN', img, 'sh', '-c', 'umount /proc/uptime; echo rc=$?; cat /proc/uptime');
    expect(r.stdout).toMatch(/rc=1/);
    expect(Number(r.stdout.trim().split('\n').at(-1)!.split(' ')[0])).toBeLessThan(10);
  });
});
