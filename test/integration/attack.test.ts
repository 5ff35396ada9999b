// The attack suite (test/attack/attempts.ts) through one private dockerd with two runtimes: eci,
// where every attempt must be blocked, and plain runc, whose results are only reported. Writes the
// comparison to test/attack/last-comparison.md. Every probe is harmless (see the fixtures).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, importBusyboxImage, startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { startManager, type TestManager } from '../helpers/manager.ts';
import { gccMissing, installC } from '../helpers/cprog.ts';
import { missingCaps, privilegedWithout } from '../helpers/host-caps.ts';
import { readHostFacts, type AttackContext, type HostFacts } from '../attack/context.ts';
import { comparison, lines, runSuite, type SuiteRun } from '../attack/run.ts';

const avail = dockerdAvailable();
const skip = !avail.ok ? avail.reason : gccMissing;
const PROBES = ['attack-priv', 'attack-ns', 'attack-exe', 'ro_escape', 'remount_race', 'suid_plant'];
// The committed copy (test/attack/last-comparison.md) is refreshed only when asked for
// (ECI_ATTACK_REPORT=test/attack/last-comparison.md): a test run must not dirty the checkout.
const COMPARISON = process.env.ECI_ATTACK_REPORT ?? join(tmpdir(), 'eci-attack-last-comparison.md');


describe.skipIf(skip)(`attack suite: eci blocks every attempt, runc for comparison${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  let base: Omit<AttackContext, 'runtime' | 'privFlags'>;
  let host: HostFacts;
  let eciRun: SuiteRun | undefined;
  let runcRun: SuiteRun | undefined;
  const notes: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/ecia-');
    chmodSync(dir, 0o755);
    const probes = join(dir, 'probes');
    const work = join(dir, 'work');
    await installC(probes, ...PROBES);
    mkdirSync(work);
    host = readHostFacts(join(probes, 'attack-priv'));
    writeFileSync(join(dir, 'host-marker'), 'only on the host\n');
    // The engine socket is known to eci as bin/eci install would make it: listed in engineSockets.
    const ddir = join(dir, 'd');
    const settings = join(dir, 'settings.json');
    writeFileSync(settings, JSON.stringify({ engineSockets: ['/var/run/docker.sock', '/run/docker.sock', join(ddir, 'docker.sock')] }));
    m = await startManager({ env: { ECI_SETTINGS: settings } });
    d = await startDockerd({ dir: ddir, runtimes: { eci: m.runtime } });
    img = await importBusyboxImage(d);
    // An image with a symlink that climbs out of the rootfs (CVE-2021-30465 style mount target).
    const hostTarget = join(dir, 'symlink-target');
    mkdirSync(hostTarget);
    writeFileSync(join(hostTarget, 'host-only'), '');
    const mk = await d.docker(['run', '--name', 'eci-attack-symlink-src', '--network', 'none', '--runtime=runc', img, 'ln', '-s', `../../../../../../..${hostTarget}`, '/evil']);
    expect(mk.code, mk.stderr).toBe(0);
    expect((await d.docker(['commit', 'eci-attack-symlink-src', 'eci-attack-symlink'])).code).toBe(0);
    await d.docker(['rm', 'eci-attack-symlink-src']);
    const state = join(m.dir, 'state');
    symlinkSync(state, join(work, 'link-to-state'));
    base = {
      bus: { url: m.natsUrl, runDir: join(m.dir, 'run'), stateDir: state, repo: fileURLToPath(new URL('../..', import.meta.url)) },
      d, img, probes, work, hostPid: d.pid, symlink: { image: 'eci-attack-symlink', hostTarget }, hostDirs: [dir, m.dir], marker: join(dir, 'host-marker').slice(1), host,
      restricted: {
        engineSocket: d.socket,
        engineConfig: '/etc/docker',
        eciStateDir: state,
        eciSocket: m.socket,
        symlinkToState: join(work, 'link-to-state'),
        parentOfState: m.dir,
        dotdotToState: `${work}/../../${basename(m.dir)}/state`,
      },
    };
  });
  afterAll(async () => {
    await d?.stop();
    await m?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('blocks every attempt under eci (one line per attempt)', async () => {
    eciRun = await runSuite({ ...base, runtime: 'eci', privFlags: ['--privileged'] });
    console.log(`attack suite under eci (${(eciRun.totalMs / 1000).toFixed(1)} s):\n${lines(eciRun).join('\n')}`);
    const through = eciRun.results.filter((r) => !r.blocked && !r.attempt.informational);
    expect(through.map((r) => `${r.attempt.category} ${r.attempt.name}: ${r.detail}`)).toEqual([]);
    expect((await m.ps()).containers).toEqual([]); // nothing left behind by refused or finished containers
  }, 300_000);

  it('reports what plain runc lets through, and writes the comparison', async () => {
    // runc --privileged fails on hosts whose bounding set lacks a capability Docker asks for
    // ("unable to apply caps"); then the closest equivalent stands in: every capability the host
    // has, no seccomp, unmasked /proc, and access to every device.
    let privFlags = ['--privileged'];
    const probe = await d.docker(['run', '--rm', '--network', 'none', '--runtime=runc', '--privileged', img, 'true']);
    if (probe.code !== 0) {
      const missing = missingCaps();
      privFlags = [...privilegedWithout(missing), '--device-cgroup-rule', 'b *:* rwm', '--device-cgroup-rule', 'c *:* rwm',
        '--device', host.disk, '--device', '/dev/kmsg'];
      const why = /unable to apply caps[^:\n]*(: [^:\n]*)?/.exec(probe.stderr)?.[0] ?? probe.stderr.trim().split('\n').at(-1);
      notes.push(`runc --privileged cannot start here ("${why}"); the runc column uses its closest equivalent: --cap-add ALL --cap-drop ${missing.join(',')}, seccomp=unconfined, systempaths=unconfined, all devices allowed, ${host.disk} and /dev/kmsg added.`);
    }
    notes.push('eci runs --privileged as is.');
    runcRun = await runSuite({ ...base, runtime: 'runc', privFlags });
    console.log(`attack suite under plain runc (${(runcRun.totalMs / 1000).toFixed(1)} s):\n${lines(runcRun).join('\n')}`);
    expect(eciRun, 'the eci run must come first').toBeDefined();
    writeFileSync(COMPARISON, comparison(runcRun, eciRun!, notes));
    console.log(`comparison written to ${COMPARISON}`);
    // The suite must be able to see an escape: plain runc lets the host namespaces and paths through.
    const through = new Set(runcRun.results.filter((r) => !r.blocked).map((r) => r.attempt.name));
    for (const n of ['--pid=host', '--userns=host', 'engine socket', 'host root', 'chmod u+s']) expect(through, n).toContain(n);
  }, 300_000);
});
