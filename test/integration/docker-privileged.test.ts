// --privileged through eci: every capability eci holds, host device nodes present, and still no
// reach beyond the container. The probes are harmless (test/fixtures/c/priv_probe.c says why).
import { mkdtempSync, readFileSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { FIRST } from '../helpers/manager.ts';
import { installC } from '../helpers/cprog.ts';

const avail = dockerdAvailable();

/** The host's root block device, from its mount table (e.g. /dev/vda). */
function hostBlockDevice(): string | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === '/');
  const dev = line?.split(' - ')[1]?.split(' ')[1];
  return dev && dev.startsWith('/dev/') && existsSync(dev) ? dev : undefined;
}

describe.skipIf(!avail.ok)(`privileged containers stay contained${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    dir = mkdtempSync('/tmp/eciv-');
    chmodSync(dir, 0o755);
    await installC(dir, 'priv_probe');
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs with every capability eci holds and the host devices present', async () => {
    const r = await d.docker(['run', '--rm', ...RUN_FLAGS, '--privileged', '--runtime=eci', img, 'sh', '-c', 'grep CapEff /proc/self/status; cat /proc/self/uid_map; ls /dev | wc -l']);
    expect(r.code, r.stderr).toBe(0);
    const [capEff, map, devs] = r.stdout.trim().split('\n');
    const mine = /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1];
    expect(capEff.split(/\s+/)[1]).toBe(mine);
    expect(map.trim().split(/\s+/).join(' ')).toBe(`0 ${FIRST} 65536`);
    expect(Number(devs)).toBeGreaterThan(15);
  });

  it('blocks block-device reads, mknod, bpf, module loads, global sysctls, /sys knobs, release_agent and sysrq', async () => {
    const dev = hostBlockDevice();
    const r = await d.docker(['run', '--rm', ...RUN_FLAGS, '--privileged', '--runtime=eci', '-v', `${dir}:/probe:ro`, img, '/probe/priv_probe', ...(dev ? [dev] : [])]);
    expect(r.code, r.stderr).toBe(0);
    const results = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split(' ')));
    console.log(`privileged probes under eci: ${JSON.stringify(results)}`);
    for (const [probeName, result] of Object.entries(results)) {
      expect(result, `${probeName} must not succeed`).not.toBe('ok');
    }
    if (dev) expect(results.blockdev_read).toMatch(/EACCES|EPERM|ENOENT/);
    expect(results.mknod_loop).toBe('EPERM');
    expect(results.bpf_map_list).toBe('EPERM');
    expect(results.sysctl_kernel_printk_ratelimit).toMatch(/EACCES|EPERM|EROFS/);
  });
});
