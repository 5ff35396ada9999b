// systemd as PID 1 through Docker, with no extra flags (issue 16): a Debian 12 image built from
// Debian's packages (systemd, systemd-sysv, dbus) boots to `running`; systemctl and journalctl work;
// a unit (with PrivateTmp=, so a mount namespace) starts and stops; `docker stop` halts it cleanly
// (SIGRTMIN+3, exit 0, not the SIGKILL after the timeout) and leaves nothing behind; the delegated
// cgroup lets it neither raise its own limits nor leave its subtree.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debianImageSkipReason, importDebian } from '../helpers/debian-image.ts';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';

const avail = dockerdAvailable();
const skip = avail.ok ? debianImageSkipReason() : avail.reason!;
const BOOT_BOUND_S = 120; // generous: a boot takes a few seconds here

/** Host cgroup dirs (v1 name=systemd, unified) whose name is the container id, anywhere below the hierarchies. */
function cgroupDirsOf(id: string): string[] {
  const out: string[] = [];
  for (const root of ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/pids']) {
    if (!existsSync(root)) continue;
    for (const e of readdirSync(root, { recursive: true }) as string[]) if (e.endsWith(id)) out.push(join(root, e));
  }
  return out;
}

/** Host pids of every process in the pid namespace of `initPid`. */
function pidsInNamespaceOf(initPid: number): number[] {
  const ns = readlinkSync(`/proc/${initPid}/ns/pid`);
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((p) => {
    try { return readlinkSync(`/proc/${p}/ns/pid`) === ns; } catch { return false; }
  });
}

describe.skipIf(skip !== '')(`systemd as PID 1 through Docker${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let busybox: string;
  const names: string[] = [];

  /** `docker run -d --runtime=eci IMAGE /sbin/init` (no flag beyond the harness's --network none) and waits for the boot to finish. */
  async function boot(name: string): Promise<{ state: string; id: string }> {
    names.push(name);
    const r = await d.docker(['run', '-d', '--name', name, ...RUN_FLAGS, '--runtime=eci', img, '/sbin/init']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    // is-system-running --wait blocks until the boot is over; before systemd listens it answers at once, so poll.
    const end = Date.now() + BOOT_BOUND_S * 1000;
    let last = '';
    while (Date.now() < end) {
      const s = await d.docker(['exec', name, 'timeout', String(BOOT_BOUND_S), 'systemctl', 'is-system-running', '--wait']);
      last = `${s.stdout.trim()} ${s.stderr.trim()}`.trim();
      if (['running', 'degraded', 'maintenance', 'stopping'].includes(s.stdout.trim())) return { state: s.stdout.trim(), id };
      const st = await d.docker(['inspect', '-f', '{{.State.Running}}', name]);
      if (st.stdout.trim() !== 'true') break;
      await sleep(200);
    }
    const logs = await d.docker(['logs', name]);
    throw new Error(`waited ${BOOT_BOUND_S} s for systemd in ${name} to finish booting; last answer: ${last}\n${logs.stdout.slice(-3000)}${logs.stderr.slice(-1000)}`);
  }
  const sh = (name: string, script: string) => d.docker(['exec', name, 'sh', '-c', script]);

  beforeAll(async () => {
    ({ m, d, img: busybox } = await startEciDocker());
    img = await importDebian(d, 'systemd');
  }, 20 * 60_000);
  afterAll(async () => {
    for (const n of names) await d?.docker(['rm', '-f', n]);
    await stopEciDocker({ m, d });
  });

  it('boots to running with no extra flags, with what eci set up for it', async () => {
    const { state } = await boot('sd-boot');
    const failed = await d.docker(['exec', 'sd-boot', 'systemctl', '--failed', '--no-legend', '--plain']);
    expect({ state, failed: failed.stdout.trim() }).toEqual({ state: 'running', failed: '' });
    const r = await sh('sd-boot', [
      'cat /proc/1/cgroup | grep -E "name=systemd|^0::"',
      'cat /run/systemd/container; echo',
      'awk \'$2=="/run" || $2=="/run/lock" || $2=="/sys" || $2=="/sys/fs/cgroup/systemd" || $2=="/sys/fs/cgroup/unified" {print $2, $3, $4}\' /proc/self/mounts',
      'cat /proc/self/uid_map',
    ].join('; '));
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/name=systemd:\/init\.scope/); // its cgroup namespace's root is its own cgroup
    expect(out).toMatch(/\ndocker\n/); // container= (the engine's name, as systemd itself would detect it)
    expect(out).toMatch(/^\/run tmpfs rw,nosuid,nodev,/m);
    expect(out).toMatch(/^\/run\/lock tmpfs rw,nosuid,nodev,noexec,/m);
    expect(out).toMatch(/^\/sys sysfs ro,/m);
    expect(out).toMatch(/^\/sys\/fs\/cgroup\/systemd cgroup rw,/m);
    expect(out).not.toMatch(/^\s*0\s+0\s+/m); // still in its own user namespace
  });

  it('systemctl starts and stops a unit (sandboxed: its own mount namespace), and journalctl shows it', async () => {
    await boot('sd-unit');
    // PrivateTmp= binds a private /tmp, ProtectKernelLogs= remounts the /proc/kmsg file mount read-only: both vetted mounts.
    const unit = '[Unit]\nDescription=eci test unit\n[Service]\nPrivateTmp=yes\nProtectKernelLogs=yes\nExecStart=/bin/sh -c "echo hello-from-eci-unit; touch /tmp/private; exec sleep infinity"\n';
    const w = await d.docker(['exec', '-i', 'sd-unit', 'sh', '-c', 'cat > /etc/systemd/system/eci-hello.service && systemctl daemon-reload'], { input: unit });
    expect(w.code, w.stderr).toBe(0);
    const start = await sh('sd-unit', 'systemctl start eci-hello && systemctl is-active eci-hello && ls /tmp/private 2>&1; true');
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/^active\n/);
    expect(start.stdout).toContain('No such file'); // its /tmp was private
    const end = Date.now() + 30_000;
    let journal = '';
    while (Date.now() < end && !journal.includes('hello-from-eci-unit')) {
      journal = (await sh('sd-unit', 'journalctl --no-pager -u eci-hello')).stdout;
      if (!journal.includes('hello-from-eci-unit')) await sleep(200);
    }
    expect(journal, 'waited 30 s for the unit output in the journal').toContain('hello-from-eci-unit');
    const stop = await sh('sd-unit', 'systemctl stop eci-hello; systemctl is-active eci-hello; journalctl --no-pager -u eci-hello | grep -c "Stopped eci-hello.service"');
    expect(stop.stdout.trim().split('\n')).toEqual(['inactive', '1']);
  });

  it('bind-remounts a file mount as systemd does, and still never makes a read-only one writable', async () => {
    const dir = mkdtempSync('/tmp/ecisd-');
    try {
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'f'), 'host file\n', { mode: 0o644 });
      const r = await d.docker(['run', '--rm', ...RUN_FLAGS, '--runtime=eci', '--cap-add', 'SYS_ADMIN', '-v', `${join(dir, 'f')}:/f:ro`, busybox, 'sh', '-c', [
        'mount -o remount,bind,ro,nosuid,nodev /etc/hostname && echo "hostname-ro ok"',
        'grep -q "/etc/hostname .*ro," /proc/self/mountinfo && echo "hostname-ro seen"',
        'mount -o remount,bind,rw /f 2>/dev/null && echo "f-rw allowed" || echo "f-rw refused"',
        'echo x 2>/dev/null > /f && echo "f written" || echo "f unwritable"',
      ].join('; ')]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual(['hostname-ro ok', 'hostname-ro seen', 'f-rw refused', 'f unwritable']);
      expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('host file\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never lets the delegated cgroup raise its own limits or leave its subtree', async () => {
    const { id } = await boot('sd-cgroup');
    const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', 'sd-cgroup'])).stdout.trim());
    const r = await sh('sd-cgroup', [
      'try() { if sh -c "$2" 2>/dev/null; then echo "$1 allowed"; else echo "$1 refused"; fi; }',
      'try v1-memory-limit "echo 4096 > /sys/fs/cgroup/memory/memory.limit_in_bytes"',
      'try v1-pids-max "echo 5 > /sys/fs/cgroup/pids/pids.max"',
      'try v1-memory-mkdir "mkdir /sys/fs/cgroup/memory/escape"',
      'try unified-max-descendants "echo 1 > /sys/fs/cgroup/unified/cgroup.max.descendants"',
      'try unified-max-depth "echo 1 > /sys/fs/cgroup/unified/cgroup.max.depth"',
      'if [ -e /sys/fs/cgroup/unified/memory.max ]; then try unified-memory-max "echo 4096 > /sys/fs/cgroup/unified/memory.max"; else echo "unified-memory-max refused"; fi',
      // A new cgroup mount is refused by eci's vetter; were it allowed, its root would still be this cgroup.
      'mkdir -p /tmp/cg; try new-cgroup2-mount "mount -t cgroup2 none /tmp/cg"',
      'try new-systemd-mount "mount -t cgroup -o none,name=systemd none /tmp/cg"',
      // Within its subtree it may move processes: a child cgroup, then back to its own root.
      'try own-child "mkdir /sys/fs/cgroup/systemd/eci-child && echo $$ > /sys/fs/cgroup/systemd/eci-child/cgroup.procs && echo $$ > /sys/fs/cgroup/systemd/cgroup.procs && rmdir /sys/fs/cgroup/systemd/eci-child"',
      'awk \'$5 ~ /^\\/sys\\/fs\\/cgroup\\// {print "root", $5, $4}\' /proc/self/mountinfo',
    ].join('\n'));
    expect(r.code, r.stderr).toBe(0);
    const verdicts = Object.fromEntries(r.stdout.split('\n').filter((l) => / (allowed|refused)$/.test(l)).map((l) => l.split(' ')));
    expect(verdicts).toEqual({
      'v1-memory-limit': 'refused', 'v1-pids-max': 'refused', 'v1-memory-mkdir': 'refused',
      'unified-max-descendants': 'refused', 'unified-max-depth': 'refused', 'unified-memory-max': 'refused',
      'new-cgroup2-mount': 'refused', 'new-systemd-mount': 'refused', 'own-child': 'allowed',
    });
    // Every cgroup mount it sees is rooted at its own cgroup: the parent is not even nameable.
    for (const l of r.stdout.split('\n').filter((x) => x.startsWith('root '))) expect(l.split(' ')[2], l).toBe('/');
    // From the host: every process of the container is in its own subtree, in every hierarchy.
    const pids = pidsInNamespaceOf(pid);
    expect(pids.length).toBeGreaterThan(3);
    for (const p of pids) {
      let text: string;
      try { text = readFileSync(`/proc/${p}/cgroup`, 'utf8'); } catch { continue; } // exited meanwhile
      for (const line of text.trim().split('\n')) expect(line, `pid ${p}`).toMatch(new RegExp(`:/docker/${id}(/|$)`));
    }
    // The host's limit files of its cgroup are untouched and still host root's.
    const mem = `/sys/fs/cgroup/memory/docker/${id}/memory.limit_in_bytes`;
    if (existsSync(mem)) expect(Number(readFileSync(mem, 'utf8'))).toBeGreaterThan(4096);
  });

  it('docker stop halts it cleanly (exit 0, not the SIGKILL after the timeout) and leaves nothing behind', async () => {
    const { id } = await boot('sd-stop');
    expect(cgroupDirsOf(id).length).toBeGreaterThan(0);
    // A generous timeout: with SIGTERM, systemd would re-execute itself and only the SIGKILL at its end would stop it (137).
    const s = await d.docker(['stop', '-t', '120', 'sd-stop'], { timeoutMs: 180_000 });
    expect(s.code, s.stderr).toBe(0);
    const st = await d.docker(['inspect', '-f', '{{.State.ExitCode}} {{.State.OOMKilled}}', 'sd-stop']);
    expect(st.stdout.trim()).toBe('0 false');
    const rm = await d.docker(['rm', 'sd-stop']);
    expect(rm.code, rm.stderr).toBe(0);
    // Nothing left: no cgroup dir of it, no record in the manager, no mount under its run dir.
    expect(cgroupDirsOf(id)).toEqual([]);
    const end = Date.now() + 30_000;
    while (Date.now() < end && (await m.ps()).containers.some((c) => c.id === id)) await sleep(100);
    expect((await m.ps()).containers.map((c) => c.id), 'waited 30 s for the manager to forget the container').not.toContain(id);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(id);
  });
});
