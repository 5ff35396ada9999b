// The private-dockerd harness itself, with plain runc as the runtime: if this fails, every
// Docker-level eci test would fail for reasons that are not eci's.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, importBusyboxImage, mountsUnder, RUN_FLAGS, startDockerd, type Dockerd } from '../helpers/dockerd.ts';

const avail = dockerdAvailable();
const T = 120_000;

describe.skipIf(!avail.ok)(`dockerd harness${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let d: Dockerd | undefined;
  let image = '';

  beforeAll(async () => {
    d = await startDockerd({ runtimes: { 'runc-plain': '/usr/sbin/runc' } });
    image = await importBusyboxImage(d);
  }, T);

  afterAll(async () => {
    await d?.stop();
  }, T);

  const norm = (s: string) => s.trim().split(/\s+/).join(' ');

  it('runs a container with the host identity uid map under runc-plain', async () => {
    const r = await d!.docker(['run', '--rm', '--runtime=runc-plain', ...RUN_FLAGS, image, 'cat', '/proc/self/uid_map']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(norm(r.stdout)).toBe('0 0 4294967295');
  }, T);

  it('runs sh -c from the imported busybox image', async () => {
    const r = await d!.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=runc-plain', image, 'sh', '-c', 'echo hi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hi\n');
  }, T);

  it('stops dockerd and leaves no mount and no dir behind', async () => {
    const { dir, pid } = d!;
    // A running container at stop time exercises the remove-first path.
    const bg = await d!.docker(['run', '-d', ...RUN_FLAGS, '--runtime=runc-plain', image, 'sleep', '600']);
    expect(bg.code, bg.stderr).toBe(0);
    expect((await mountsUnder(dir)).length).toBeGreaterThan(0);
    await d!.stop();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(await mountsUnder(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  }, T);
});
