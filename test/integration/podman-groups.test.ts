// Groups through Podman (issue 15): `podman run --network container:X` and `--pid container:X` join
// X's namespaces, user namespace and range; the range goes with the last member.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIRST, startManager, type TestManager } from '../helpers/manager.ts';
import { importPodmanBusybox, podmanAvailable, startPodman, type Podman } from '../helpers/podman.ts';

const avail = podmanAvailable();
const norm = (s: string) => s.trim().split(/\s+/).join(' ');

describe.skipIf(!avail.ok)(`eci groups through Podman${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let p: Podman;
  let img: string;
  let n = 0;
  const name = () => `eci-g${process.pid}-${++n}`;
  const withEci = (args: string[]) => p.podman(['--runtime', m.runtime, ...args]);
  const ok = async (args: string[]) => {
    const r = await withEci(args);
    expect(r.code, `podman ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  /** runFlags without its --network none (the member takes its network from the first). */
  const flagsNoNet = () => p.runFlags.filter((f, i, a) => f !== '--network' && a[i - 1] !== '--network');

  beforeAll(async () => {
    m = await startManager();
    p = await startPodman();
    img = await importPodmanBusybox(p);
  });
  afterAll(async () => {
    await p?.stop();
    await m?.destroy();
  });

  it('--network and --pid container:X share the namespaces, the user namespace and the range', async () => {
    const a = name();
    const b = name();
    try {
      await ok(['run', '-d', '--name', a, ...p.runFlags, img, 'sleep', '302']);
      await ok(['run', '-d', '--name', b, ...flagsNoNet(), '--network', `container:${a}`, '--pid', `container:${a}`, img, 'sleep', '300']);
      for (const k of ['net', 'pid', 'user']) {
        expect(await ok(['exec', b, 'readlink', `/proc/self/ns/${k}`]), k).toBe(await ok(['exec', a, 'readlink', `/proc/self/ns/${k}`]));
      }
      expect(norm(await ok(['exec', b, 'cat', '/proc/self/uid_map']))).toBe(`0 ${FIRST} 65536`);
      expect(await ok(['exec', b, 'ps', 'x'])).toContain('sleep 302');
      expect(Object.values((await m.ps()).ranges)).toHaveLength(1);
      await p.podman(['rm', '-f', '-t', '0', b]);
      expect(Object.values((await m.ps()).ranges)).toHaveLength(1);
    } finally {
      await p.podman(['rm', '-f', '-t', '0', b]);
      await p.podman(['rm', '-f', '-t', '0', a]);
    }
    expect((await m.ps()).containers).toEqual([]);
    expect((await m.ps()).ranges).toEqual({});
  });
});
