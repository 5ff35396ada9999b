// The attack suite's batches: one container (or a short docker sequence) each, whose probes print
// "key value" lines that the attempts in attempts.ts judge. All probes are harmless.
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerResult } from '../helpers/dockerd.ts';
import { dockerRun, findings, type AttackContext } from './context.ts';
import { probeBus } from './bus-probe.ts';
import { reason, type Batch } from './attempts.ts';

/** docker exec (20.10) prints the runtime's refusal on stdout, exit 126. */
const execRefused = (r: DockerResult) => r.code >= 125 && r.code <= 127 && /OCI runtime exec failed/.test(r.stdout + r.stderr);

/** Every path under dir whose mode has S_ISUID or S_ISGID. */
function setidFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const mode = statSync(join(dir, name)).mode;
    if (mode & 0o6000) out.push(`${name}:0${(mode & 0o7777).toString(8)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Batches: one container each

const sh = (script: string) => ['sh', '-c', script];
const PROBES = (c: AttackContext) => ['-v', `${c.probes}:/probe:ro`];

function nsBatch(id: string, flags: string[], ns: string): Batch {
  return { id, run: async (c) => findings(await dockerRun(c, flags, sh(`echo "ns $(readlink /proc/self/ns/${ns})"`))) };
}

function restrictedBatch(id: string, src: (c: AttackContext) => string, target = '/x'): Batch {
  return {
    id,
    run: async (c) =>
      findings(await dockerRun(c, ['-v', `${src(c)}:${target}`], sh(`test -e ${target} && echo "visible $(ls -d ${target}/* 2>/dev/null | head -3 | tr '\\n' ' ')"; true`))),
  };
}

/** A fresh dir under the run's work dir (removed first). */
function freshDir(c: AttackContext, name: string): string {
  const p = join(c.work, `${c.runtime}-${name}`);
  rmSync(p, { recursive: true, force: true });
  mkdirSync(p, { mode: 0o755 });
  return p;
}

export const BATCHES: Batch[] = [
  nsBatch('pid-host', ['--pid=host'], 'pid'),
  nsBatch('ipc-host', ['--ipc=host'], 'ipc'),
  nsBatch('uts-host', ['--uts=host'], 'uts'),
  nsBatch('net-host', ['--network=host'], 'net'),
  { id: 'userns-host', run: async (c) => findings(await dockerRun(c, ['--userns=host'], sh('echo "uidmap $(tr -s " " < /proc/self/uid_map)"'))) },
  {
    id: 'host-pid-join',
    run: async (c) => findings(await dockerRun(c, ['--pid=host', '--cap-add', 'SYS_ADMIN', '--cap-add', 'SYS_PTRACE',
      '--security-opt', 'seccomp=unconfined', ...PROBES(c)], ['/probe/attack-ns', String(c.hostPid), c.marker])),
  },
  {
    id: 'privileged',
    run: async (c) => findings(await dockerRun(c, [...c.privFlags, ...PROBES(c)],
      ['/probe/attack-priv', c.host.disk, c.host.diskMajMin, c.host.diskFs, c.marker])),
  },
  {
    id: 'exec-privileged',
    // A plain container, then `docker exec --privileged` into it: the same probes as --privileged.
    run: async (c) => {
      const id = (await c.d.docker(['run', '-d', '--network', 'none', `--runtime=${c.runtime}`, ...PROBES(c), c.img, 'sleep', '120'])).stdout.trim();
      if (!id) return { code: 125, out: '', err: 'docker run -d failed', kv: {}, refused: true };
      try {
        const r = await c.d.docker(['exec', '--privileged', id, '/probe/attack-priv', c.host.disk, c.host.diskMajMin, c.host.diskFs, c.marker]);
        return execRefused(r) ? { code: r.code, out: '', err: r.stdout + r.stderr, kv: {}, refused: true } : findings(r);
      } finally {
        await c.d.docker(['rm', '-f', id]);
      }
    },
  },
  {
    id: 'cgroup-limit',
    // Raise the container's own memory limit from inside (harmless: 256 MiB -> 512 MiB, own cgroup).
    run: async (c) => findings(await dockerRun(c, [...c.privFlags, '-m', '256m'], sh([
      'f=/sys/fs/cgroup/memory/memory.limit_in_bytes; [ -e $f ] || f=/sys/fs/cgroup/memory.max',
      'before=$(cat $f)',
      'if echo 536870912 > $f 2>/dev/null && [ "$(cat $f)" != "$before" ]; then echo "raise ok $before -> $(cat $f)"; else echo "raise failed $before"; fi',
    ].join('; ')))),
  },
  {
    id: 'device-cgroup',
    run: async (c) => {
      const [maj, min] = c.host.diskMajMin.split(':');
      return findings(await dockerRun(c, [], sh(`mknod /tmp/d b ${maj} ${min}; echo "mknod $?"; ` +
        `dd if=/tmp/d of=/dev/null bs=512 count=1 2>/dev/null && echo "read ok" || echo "read failed"`)));
    },
  },
  {
    id: 'procfs',
    run: async (c) => findings(await dockerRun(c, ['-m', '256m', '--security-opt', 'systempaths=unconfined'], sh([
      'echo "uptime $(cut -d" " -f1 /proc/uptime)"',
      'echo "memtotal $(awk \'/^MemTotal:/ {print $2}\' /proc/meminfo)"',
      'echo "hostname $(cat /proc/sys/kernel/hostname)"',
      `echo "hostpaths $(grep -c ${c.hostDirs.map((h) => `-e ${h}`).join(' ')} /proc/self/mountinfo) $(grep -o ${c.hostDirs.map((h) => `-e '${h}[^ ,]*'`).join(' ')} /proc/self/mountinfo | head -1)"`,
      'if [ ! -e /proc/kcore ]; then echo "kcore ENOENT"; elif head -c 64 /proc/kcore > /tmp/k 2>/dev/null && [ -s /tmp/k ]; then echo "kcore ok"; else echo "kcore read-failed"; fi',
    ].join('; ')), { timeoutMs: 60_000 })),
  },
  {
    id: 'procfs-unmask',
    // With SYS_ADMIN: take eci's emulated files away, or mount a fresh procfs beside them.
    run: async (c) => findings(await dockerRun(c, ['-m', '256m', '--cap-add', 'SYS_ADMIN'], sh([
      'umount /proc/uptime 2>/dev/null; echo "umount_uptime $?"',
      'umount /proc/meminfo 2>/dev/null; echo "umount_meminfo $?"',
      'echo "uptime_after $(cut -d" " -f1 /proc/uptime)"',
      'echo "memtotal_after $(awk \'/^MemTotal:/ {print $2}\' /proc/meminfo)"',
      'mkdir -p /tmp/p; if mount -t proc proc /tmp/p 2>/dev/null; then echo "fresh_proc ok $(cut -d" " -f1 /tmp/p/uptime) $(awk \'/^MemTotal:/ {print $2}\' /tmp/p/meminfo)"; else echo "fresh_proc failed"; fi',
    ].join('; ')), { timeoutMs: 60_000 })),
  },
  restrictedBatch('engine-socket', (c) => c.restricted.engineSocket, '/var/run/docker.sock'),
  restrictedBatch('engine-config', (c) => c.restricted.engineConfig),
  restrictedBatch('eci-state', (c) => c.restricted.eciStateDir),
  restrictedBatch('eci-socket', (c) => c.restricted.eciSocket, '/eci.sock'),
  restrictedBatch('symlink', (c) => c.restricted.symlinkToState),
  restrictedBatch('parent', (c) => c.restricted.parentOfState),
  restrictedBatch('dotdot', (c) => c.restricted.dotdotToState),
  restrictedBatch('host-root', () => '/'),
  {
    id: 'symlink-target',
    run: async (c) => {
      // The image's /evil is a symlink climbing out of the rootfs to a host dir; the volume must
      // land inside the rootfs (where the link resolves under the container's root), not there.
      const vol = freshDir(c, 'symvol');
      writeFileSync(join(vol, 'vol-marker'), 'volume\n');
      const r = await c.d.docker(['run', '--rm', '--network', 'none', `--runtime=${c.runtime}`, '-v', `${vol}:/evil`, c.symlink.image,
        'sh', '-c', 'echo "inside $(ls /evil | tr "\\n" " ")"; echo "resolved $(readlink -f /evil)"']);
      return findings(r, { host_target: readdirSync(c.symlink.hostTarget).join(',') || 'empty' });
    },
  },
  {
    id: 'remount',
    run: async (c) => {
      const vol = freshDir(c, 'ro');
      const r = await dockerRun(c, ['--cap-add', 'SYS_ADMIN', '-v', `${vol}:/mnt:ro`, ...PROBES(c)], ['/probe/ro_escape', '/mnt']);
      return findings(r, { host_vol: readdirSync(vol).join(',') || 'empty' });
    },
  },
  {
    id: 'race',
    run: async (c) => {
      const vol = freshDir(c, 'race');
      const r = await dockerRun(c, ['--cap-add', 'SYS_ADMIN', '-v', `${vol}:/mnt:ro`, ...PROBES(c)],
        sh('mkdir -p /tmp/rw && mount -t tmpfs tmpfs /tmp/rw && /probe/remount_race /mnt /tmp/rw 600'));
      return findings(r, { host_vol: readdirSync(vol).join(',') || 'empty' });
    },
  },
  {
    id: 'setuid',
    run: async (c) => {
      const vol = freshDir(c, 'suid');
      writeFileSync(join(vol, 'file'), '#!/bin/sh\n', { mode: 0o755 });
      const r = await dockerRun(c, ['-v', `${vol}:/v`, ...PROBES(c)], sh('/probe/suid_plant /v; chmod u+s /v/file; echo "chmod_u+s $?"'));
      const setid = setidFiles(vol);
      return findings(r, { host_setid: setid.join(',') || 'none' });
    },
  },
  {
    id: 'cve-2024-21626',
    run: async (c) => {
      // The leaked fd's number depends on the runtime's open files: try the usual range.
      const extra: Record<string, string> = {};
      const probe = `echo "cwd $(readlink /proc/self/cwd)"; test -e ../../../../../../../../${c.marker} && echo "marker seen" || echo "marker absent"`;
      let last: DockerResult = { code: 0, stdout: '', stderr: '' };
      for (let fd = 3; fd <= 9; fd++) {
        last = await dockerRun(c, ['-w', `/proc/self/fd/${fd}`], sh(probe));
        extra[`run_fd${fd}`] = /marker seen/.test(last.stdout) ? 'marker seen' : last.code >= 125 ? 'refused' : 'marker absent';
        if (!extra.run_why && last.code >= 125) extra.run_why = reason(last.stderr + last.stdout);
      }
      const id = (await c.d.docker(['run', '-d', '--network', 'none', `--runtime=${c.runtime}`, c.img, 'sleep', '120'])).stdout.trim();
      try {
        for (let fd = 3; fd <= 9; fd++) {
          const r = await c.d.docker(['exec', '-w', `/proc/self/fd/${fd}`, id, 'sh', '-c', probe]);
          extra[`exec_fd${fd}`] = /marker seen/.test(r.stdout) ? 'marker seen' : r.code >= 125 ? 'refused' : 'marker absent';
          if (!extra.exec_why && r.code >= 125) extra.exec_why = reason(r.stdout + r.stderr);
        }
      } finally {
        await c.d.docker(['rm', '-f', id]);
      }
      return { ...findings(last), refused: false, kv: extra };
    },
  },
  {
    id: 'runtime-exe',
    run: async (c) => {
      const id = (await c.d.docker(['run', '-d', '--network', 'none', `--runtime=${c.runtime}`, ...PROBES(c), c.img, '/probe/attack-exe', '8000'])).stdout.trim();
      if (!id) return { code: 125, out: '', err: 'docker run -d failed', kv: {}, refused: true };
      try {
        for (let i = 0; i < 6; i++) await c.d.docker(['exec', id, 'true']);
        await c.d.docker(['wait', id]);
        return findings(await c.d.docker(['logs', id]));
      } finally {
        await c.d.docker(['rm', '-f', id]);
      }
    },
  },
  {
    // Not a container: a host user without privileges (nobody) against the manager's bus, first on
    // its own, then holding the observer's credentials as a member of the eci group would.
    id: 'bus',
    run: async (c) => {
      if (!c.bus) return { code: 1, out: '', err: 'no bus in the context', kv: {}, refused: false };
      const alone = await probeBus('nobody', c.bus, c.bus.repo);
      const member = await probeBus('nobody', c.bus, c.bus.repo, readFileSync(`${c.bus.runDir}/observer.json`, 'utf8'));
      const kv: Record<string, string> = {};
      for (const [k, v] of Object.entries(alone.result ?? {})) kv[`alone_${k}`] = String(v);
      for (const [k, v] of Object.entries(member.result ?? {})) kv[`member_${k}`] = String(v);
      return { code: alone.code || member.code, out: '', err: alone.stderr + member.stderr, kv, refused: false };
    },
  },
];

