// systemd as PID 1 through Podman 4.3 with no extra flags (issue 16): Podman's own systemd mode
// (for /sbin/init) binds the host's name=systemd hierarchy on cgroup v1, which eci's mount policy
// refuses for any other container; for systemd eci drops that bind (step init-cgroup-binds) and gives
// its own delegated cgroup view. Boots to running, keeps Podman's container=podman, stops cleanly.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debianImageSkipReason, importDebianPodman } from '../helpers/debian-image.ts';
import { startManager, type TestManager } from '../helpers/manager.ts';
import { podmanAvailable, startPodman, type Podman } from '../helpers/podman.ts';

const avail = podmanAvailable();
const skip = avail.ok ? debianImageSkipReason() : avail.reason!;
const BOOT_BOUND_S = 120; // generous: a boot takes about a second here

describe.skipIf(skip !== '')(`systemd as PID 1 through Podman${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let m: TestManager;
  let p: Podman;
  let img: string;
  const withEci = (args: string[], timeoutMs?: number) => p.podman(['--runtime', m.runtime, ...args], timeoutMs === undefined ? undefined : { timeoutMs });

  beforeAll(async () => {
    m = await startManager();
    p = await startPodman();
    img = await importDebianPodman(p, 'systemd');
  }, 20 * 60_000);
  afterAll(async () => {
    await p?.podman(['rm', '-f', '-t', '0', 'eci-sd']);
    await p?.stop();
    await m?.destroy();
  });

  it('boots to running in Podman systemd mode, and podman stop halts it (exit 0)', async () => {
    const r = await withEci(['run', '-d', '--name', 'eci-sd', ...p.runFlags, img, '/sbin/init']);
    expect(r.code, r.stderr).toBe(0);
    const end = Date.now() + BOOT_BOUND_S * 1000;
    let state = '';
    while (Date.now() < end) {
      state = (await withEci(['exec', 'eci-sd', 'timeout', String(BOOT_BOUND_S), 'systemctl', 'is-system-running', '--wait'])).stdout.trim();
      if (['running', 'degraded', 'maintenance'].includes(state)) break;
      await sleep(200);
    }
    expect(state, `waited ${BOOT_BOUND_S} s for systemd to finish booting`).toBe('running');
    const info = await withEci(['exec', 'eci-sd', 'sh', '-c', 'echo "container=$(cat /run/systemd/container)"; grep name=systemd /proc/1/cgroup; echo "failed=$(systemctl --failed --no-legend --plain)"']);
    expect(info.stdout).toMatch(/^container=podman$/m); // Podman's own value is kept
    expect(info.stdout).toMatch(/name=systemd:\/init\.scope$/m); // its cgroup view is its own (no host tree)
    expect(info.stdout).toMatch(/^failed=$/m);
    const stop = await withEci(['stop', '-t', '120', 'eci-sd'], 180_000);
    expect(stop.code, stop.stderr).toBe(0);
    const exit = await withEci(['inspect', '-f', '{{.State.ExitCode}}', 'eci-sd']);
    expect(exit.stdout.trim()).toBe('0');
  });
});
