// Every container-escape and isolation-bypass attempt the suite makes, in one table. Attempts are
// grouped into batches: one batch is one container (or a short docker sequence) whose probes print
// "key value" lines, so a few containers cover every attempt. Each attempt says what it tries and
// judges the batch's findings: blocked, or let through (with the evidence). All probes are harmless
// (see test/fixtures/c/attack-*.c, ro_escape.c, remount_race.c, suid_plant.c).
import type { AttackContext, Findings } from './context.ts';

export type Category =
  | 'namespaces' | 'privileged' | 'restricted-paths' | 'remount' | 'races' | 'procfs' | 'setuid' | 'cve' | 'devices' | 'bus';

export interface Batch {
  id: string;
  run(c: AttackContext): Promise<Findings>;
}

export interface Verdict { blocked: boolean; detail: string }

export interface Attempt {
  name: string;
  category: Category;
  /** What the attack does, in a few words. */
  what: string;
  batch: string;
  /** Reported but never a failure (e.g. paths that only reveal layout). */
  informational?: boolean;
  judge(f: Findings, c: AttackContext): Verdict;
}

// ---------------------------------------------------------------------------------------------
// Judging helpers

const isOk = (v: string | undefined) => v !== undefined && v.split(' ')[0] === 'ok';

/** The engine's refusal, shortened to its most telling part (eci's own "can't ..." message). */
function refusal(f: Findings): string {
  const eci = /(eci containers )?can't [^\n]*?(?=: unknown|\.?\n|$)/.exec(f.err)?.[0];
  const line = eci ?? (reason(f.err) || `exit ${f.code}`);
  return `refused: ${line.slice(0, 160)}`;
}

/** Blocked when the container was refused; otherwise ask `inside`. */
function refusedOr(inside: (f: Findings) => Verdict): (f: Findings, c: AttackContext) => Verdict {
  return (f) => (f.refused ? { blocked: true, detail: refusal(f) } : inside(f));
}

/** Blocked when every key's result is an error; missing results count as let through (fail closed). */
function allFail(...keys: string[]): (f: Findings, c: AttackContext) => Verdict {
  return refusedOr((f) => {
    const parts = keys.map((k) => `${k}=${f.kv[k] ?? 'no result'}`);
    const blocked = keys.every((k) => f.kv[k] !== undefined && !isOk(f.kv[k]));
    // ENOSYS/ENOENT from every call: the kernel here lacks the feature (no modules, no sysrq, ...).
    const absent = keys.every((k) => /^(ENOSYS|ENOENT)$/.test(f.kv[k] ?? ''));
    return { blocked, detail: parts.join(' ') + (absent ? ' (not in this kernel)' : '') };
  });
}

/** Like allFail for reads of the host disk, noting when the host itself may not read it (sandboxes). */
function diskFail(key: string): (f: Findings, c: AttackContext) => Verdict {
  return (f, c) => {
    const v = allFail(key)(f, c);
    return c.host.diskReadable ? v : { ...v, detail: `${v.detail} (host root cannot read ${c.host.disk} here either)` };
  };
}

/** Namespace link of the container vs the host's. */
function ownNamespace(ns: string): (f: Findings, c: AttackContext) => Verdict {
  return (f, c) =>
    f.refused
      ? { blocked: true, detail: refusal(f) }
      : { blocked: f.kv.ns !== undefined && f.kv.ns !== c.host.ns[ns], detail: `container ${f.kv.ns ?? 'no result'}, host ${c.host.ns[ns]}` };
}


// ---------------------------------------------------------------------------------------------
// Attempts

/** A restricted host path given with -v: blocked unless the container sees it. */
const notVisible = (f: Findings): Verdict => ({
  blocked: f.kv.visible === undefined,
  detail: f.kv.visible !== undefined ? `mounted, container sees ${f.kv.visible.trim() || 'it'}` : `not visible (exit ${f.code})`,
});

const writeAfter = (syscalls: string[], tag: string) => refusedOr((f) => {
  const w = f.kv[`write_after_${tag}`];
  const blocked = w !== undefined && !isOk(w) && f.kv.host_vol === 'empty';
  return { blocked, detail: `${syscalls.map((s) => `${s}=${f.kv[s] ?? '-'}`).join(' ')} write=${w ?? 'no result'} host volume ${f.kv.host_vol}` };
});

/** The file `name` on the setuid volume was left without setuid/setgid bits (and the calls failed). */
const noSetid = (name: string, ...keys: string[]) => refusedOr((f) => {
  const hit = f.kv.host_setid.split(',').find((e) => e.split(':')[0] === name);
  const callOk = keys.some((k) => isOk(f.kv[k]));
  return { blocked: !hit && !callOk, detail: `${keys.map((k) => `${k}=${f.kv[k] ?? 'no result'} `).join('')}host file: ${hit ? `mode ${hit.split(':')[1]}` : 'no setid bit'}` };
});

/** The runtime's reason in docker's error: the part after its last "failed: ", shortened. */
export const reason = (text: string) => {
  const line = text.split('\n').find((l) => /failed|Error response/.test(l)) ?? text.trim().split('\n')[0] ?? '';
  const m = /unable to start container process: (.*)/.exec(line);
  return (m ? m[1] : line.split(/failed: /).at(-1)!).replace(/: unknown.*$/, '').trim().slice(0, 120);
};

const cwdLeak = (prefix: string) => (f: Findings): Verdict => {
  const entries = Object.entries(f.kv).filter(([k]) => k.startsWith(prefix));
  const seen = entries.filter(([, v]) => v === 'marker seen').map(([k]) => k);
  const refused = entries.filter(([, v]) => v === 'refused').length;
  return {
    blocked: entries.length > 0 && seen.length === 0,
    detail: seen.length ? `host file reached via ${seen.join(',')}` : `fds 3-9: ${refused} refused${f.kv[`${prefix.split('_')[0]}_why`] ? ` (first: "${f.kv[`${prefix.split('_')[0]}_why`]}")` : ''}, ${entries.length - refused} started inside the rootfs`,
  };
};

export const ATTEMPTS: Attempt[] = [
  // namespaces
  { name: '--pid=host', category: 'namespaces', what: 'share the host pid namespace', batch: 'pid-host', judge: ownNamespace('pid') },
  { name: '--ipc=host', category: 'namespaces', what: 'share the host ipc namespace', batch: 'ipc-host', judge: ownNamespace('ipc') },
  { name: '--uts=host', category: 'namespaces', what: 'share the host uts namespace', batch: 'uts-host', judge: ownNamespace('uts') },
  { name: '--network=host', category: 'namespaces', what: 'share the host network namespace', batch: 'net-host', judge: ownNamespace('net') },
  {
    name: '--userns=host', category: 'namespaces', what: 'ask for the host user namespace (container root = host root)', batch: 'userns-host',
    judge: refusedOr((f) => ({ blocked: f.kv.uidmap !== undefined && f.kv.uidmap.trim() !== '0 0 4294967295', detail: `uid_map ${f.kv.uidmap ?? 'no result'}` })),
  },
  {
    name: 'setns via /proc/<pid>/ns/*', category: 'namespaces', what: 'nsenter -t <dockerd>: join the host namespaces with --pid=host + SYS_ADMIN, SYS_PTRACE', batch: 'host-pid-join',
    judge: (f, c) => {
      if (f.refused) return { blocked: true, detail: refusal(f) };
      const joined = ['net', 'uts', 'ipc', 'cgroup', 'pid', 'mnt'].filter((n) => isOk(f.kv[`setns_${n}`]) && f.kv[`setns_${n}`].split(' ')[1] === c.host.ns[n]);
      return { blocked: joined.length === 0 && f.kv.after_setns !== undefined, detail: joined.length ? `joined host ${joined.join(',')}; host file ${f.kv.after_setns}` : `setns: ${['net', 'mnt'].map((n) => `${n}=${f.kv[`setns_${n}`] ?? '-'}`).join(' ')}` };
    },
  },
  {
    name: '/proc/<pid>/root of host', category: 'namespaces', what: 'read host files through /proc/<dockerd>/root with --pid=host', batch: 'host-pid-join',
    judge: refusedOr((f) => ({ blocked: f.kv.proc_root !== undefined && f.kv.proc_root !== 'ok marker=seen', detail: `proc_root ${f.kv.proc_root ?? 'no result'}` })),
  },
  { name: 'unshare -U nesting', category: 'namespaces', what: 'nested user ns mapping 0->0, then host-root-only opens (privileged)', batch: 'privileged', judge: allFail('userns_nest_core_pattern', 'userns_nest_blockdev') },
  // privileged abuse
  {
    name: 'kernel module load', category: 'privileged', what: 'init_module(garbage) and finit_module(/dev/null): permission, never a load', batch: 'privileged',
    judge: refusedOr((f) => {
      // EPERM: refused before the image is read; ENOSYS: a kernel without module support. Anything
      // else (ENOEXEC, EINVAL, ...) means the kernel parsed the image: permission was granted.
      const denied = (v: string | undefined) => v === 'EPERM' || v === 'ENOSYS';
      const absent = f.kv.init_module === 'ENOSYS' ? ' (not in this kernel)' : '';
      return { blocked: denied(f.kv.init_module) && denied(f.kv.finit_module), detail: `init_module=${f.kv.init_module ?? '-'} finit_module=${f.kv.finit_module ?? '-'}${absent}` };
    }),
  },
  { name: 'bpf(BPF_PROG_LOAD)', category: 'privileged', what: 'load a 2-instruction tracepoint program', batch: 'privileged', judge: allFail('bpf_prog_load') },
  { name: 'global sysctl write', category: 'privileged', what: 'open kernel.printk_ratelimit for writing', batch: 'privileged', judge: allFail('sysctl_open_w_printk_ratelimit') },
  { name: 'core_pattern write', category: 'privileged', what: 'open kernel.core_pattern for writing (host-run helper)', batch: 'privileged', judge: allFail('sysctl_open_w_core_pattern') },
  { name: 'host disk read', category: 'privileged', what: 'read the first sector of the host root disk node', batch: 'privileged', judge: diskFail('blockdev_read') },
  { name: 'mknod host disk', category: 'privileged', what: 'mknod the root disk in /tmp and read it', batch: 'privileged', judge: diskFail('mknod_disk_read') },
  { name: 'mount host disk', category: 'privileged', what: 'mount the host root disk and look up a host-only file', batch: 'privileged', judge: allFail('mount_hostdisk') },
  { name: 'mount devtmpfs', category: 'privileged', what: "mount the host's devtmpfs", batch: 'privileged', judge: allFail('mount_devtmpfs') },
  { name: '/dev/kmsg + syslog(2)', category: 'privileged', what: 'read the host kernel log', batch: 'privileged', judge: allFail('kmsg_read', 'syslog_read_all') },
  { name: 'iopl/ioperm', category: 'privileged', what: 'get raw I/O port access (reset at once)', batch: 'privileged', judge: allFail('iopl', 'ioperm') },
  {
    name: 'keyctl host keyring', category: 'privileged', what: "get root's user keyring: the host's one?", batch: 'privileged',
    judge: (f, c) => {
      if (f.refused) return { blocked: true, detail: refusal(f) };
      const v = f.kv.keyring_user;
      const id = /id=(\d+)/.exec(v ?? '')?.[1];
      return { blocked: v !== undefined && (!isOk(v) || id !== c.host.keyring), detail: `keyring ${v ?? 'no result'}, host id=${c.host.keyring}` };
    },
  },
  { name: 'perf_event_open', category: 'privileged', what: 'system-wide CPU clock event on cpu 0', batch: 'privileged', judge: allFail('perf_event_open_cpu') },
  {
    name: 'reboot(2)', category: 'privileged', what: 'reboot with an invalid magic: reaches the host pid namespace?', batch: 'privileged',
    judge: (f, c) => {
      if (f.refused) return { blocked: true, detail: refusal(f) };
      const r = f.kv.reboot_bad_magic;
      const own = f.kv.pid_ns !== undefined && f.kv.pid_ns !== c.host.ns.pid;
      return { blocked: r === 'EPERM' || (r === 'EINVAL' && own), detail: `reboot=${r ?? 'no result'} in ${own ? 'its own' : 'the host'} pid namespace` };
    },
  },
  { name: '/proc/sysrq-trigger', category: 'privileged', what: 'open sysrq-trigger for writing (never written)', batch: 'privileged', judge: allFail('sysrq_open_w') },
  { name: 'cgroup v1 release_agent', category: 'privileged', what: 'mount cgroup v1 pids, set release_agent (empty -> empty)', batch: 'privileged', judge: allFail('release_agent_write') },
  { name: '/proc/kcore', category: 'procfs', what: 'read kernel memory (privileged)', batch: 'privileged', judge: allFail('kcore_read') },
  {
    name: 'docker exec --privileged', category: 'privileged', what: 'exec --privileged into a plain container, then bpf, core_pattern, host disk mount, kmsg, perf, release_agent', batch: 'exec-privileged',
    judge: allFail('bpf_prog_load', 'sysctl_open_w_core_pattern', 'mount_hostdisk', 'mount_devtmpfs', 'kmsg_read', 'perf_event_open_cpu', 'release_agent_write'),
  },
  {
    name: 'raise own memory limit', category: 'privileged', what: 'write memory.limit_in_bytes of its own cgroup (-m 256m -> 512m)', batch: 'cgroup-limit',
    judge: refusedOr((f) => ({ blocked: f.kv.raise !== undefined && !isOk(f.kv.raise), detail: `raise ${f.kv.raise ?? 'no result'}` })),
  },
  // devices
  { name: 'device cgroup bypass', category: 'devices', what: 'mknod the host disk with default caps and read it', batch: 'device-cgroup', judge: refusedOr((f) => ({ blocked: f.kv.read === 'failed', detail: `mknod exit ${f.kv.mknod ?? '-'}, read ${f.kv.read ?? 'no result'}` })) },
  // restricted paths
  { name: 'engine socket', category: 'restricted-paths', what: '-v docker.sock into an untrusted image', batch: 'engine-socket', judge: refusedOr(notVisible) },
  { name: 'engine config', category: 'restricted-paths', what: '-v /etc/docker', batch: 'engine-config', judge: refusedOr(notVisible) },
  { name: 'eci state dir', category: 'restricted-paths', what: "-v the manager's state dir", batch: 'eci-state', judge: refusedOr(notVisible) },
  { name: 'eci socket', category: 'restricted-paths', what: "-v the manager's control socket", batch: 'eci-socket', judge: refusedOr(notVisible) },
  { name: 'via symlink', category: 'restricted-paths', what: '-v a shared symlink to the state dir', batch: 'symlink', judge: refusedOr(notVisible) },
  { name: 'via parent dir', category: 'restricted-paths', what: '-v a dir containing the state dir', batch: 'parent', judge: refusedOr(notVisible) },
  { name: 'via ../', category: 'restricted-paths', what: '-v shared/../<manager dir>/state', batch: 'dotdot', judge: refusedOr(notVisible) },
  { name: 'host root', category: 'restricted-paths', what: '-v /:/x', batch: 'host-root', judge: refusedOr(notVisible) },
  {
    name: 'symlinked mount target', category: 'restricted-paths', what: "-v vol:/evil where the image's /evil is ../../..-symlink to a host dir", batch: 'symlink-target',
    judge: refusedOr((f) => ({
      blocked: (f.kv.inside ?? '').includes('vol-marker') && f.kv.host_target === 'host-only',
      detail: `container sees ${f.kv.inside?.trim() || 'nothing'} at /evil (-> ${f.kv.resolved ?? '?'}), host dir holds ${f.kv.host_target}`,
    })),
  },
  // remount tricks on a :ro volume (with SYS_ADMIN)
  { name: 'mount -o remount,rw', category: 'remount', what: 'mount(MS_REMOUNT|MS_BIND) without RDONLY, then write', batch: 'remount', judge: writeAfter(['remount_rw'], 'remount') },
  { name: 'mount_setattr', category: 'remount', what: 'mount_setattr clearing MOUNT_ATTR_RDONLY, then write', batch: 'remount', judge: writeAfter(['mount_setattr_clear_rdonly'], 'setattr') },
  { name: 'open_tree + move_mount', category: 'remount', what: 'clone the mount, clear RDONLY on the clone, attach, remount, write', batch: 'remount', judge: writeAfter(['open_tree_clone', 'clone_mount_setattr_clear_rdonly', 'move_mount_clone', 'remount_rw_clone'], 'clone') },
  { name: 'bind + remount', category: 'remount', what: 'bind the volume elsewhere, remount the bind rw, write', batch: 'remount', judge: writeAfter(['bind_ro', 'remount_rw_bind'], 'bind') },
  // fsconfig(FSCONFIG_CMD_RECONFIGURE) is never sent: under runc it would reconfigure the host's own
  // root file system (the volume's superblock). Getting the fspick fd is the step that must fail.
  { name: 'fspick (superblock reconfigure)', category: 'remount', what: 'fspick the volume to reconfigure its superblock with fsconfig', batch: 'remount', judge: allFail('fspick') },
  // races
  { name: 'path-flip remount race', category: 'races', what: 'flip the remount path between own tmpfs and the :ro volume', batch: 'race', judge: refusedOr((f) => ({ blocked: f.kv.volume_writable === 'no' && f.kv.host_vol === 'empty', detail: `remounts_ok ${f.kv.remounts_ok ?? '-'}, volume_writable ${f.kv.volume_writable ?? 'no result'}` })) },
  // procfs leaks
  {
    name: '/proc/uptime', category: 'procfs', what: 'read the host uptime', batch: 'procfs',
    judge: refusedOr((f) => ({ blocked: Number(f.kv.uptime) < 120, detail: `container ${f.kv.uptime ?? '-'} s` })),
  },
  {
    name: '/proc/meminfo', category: 'procfs', what: 'read host MemTotal from a -m 256m container', batch: 'procfs',
    judge: (f, c) => (f.refused ? { blocked: true, detail: refusal(f) } : { blocked: f.kv.memtotal !== undefined && Number(f.kv.memtotal) !== c.host.memTotalKb, detail: `container ${f.kv.memtotal ?? '-'} kB, host ${c.host.memTotalKb} kB` }),
  },
  {
    name: '/proc/sys/kernel/hostname', category: 'procfs', what: 'read the host name', batch: 'procfs',
    judge: (f, c) => (f.refused ? { blocked: true, detail: refusal(f) } : { blocked: f.kv.hostname !== undefined && f.kv.hostname !== c.host.hostname, detail: `container ${f.kv.hostname ?? '-'}` }),
  },
  {
    name: '/proc/self/mountinfo', category: 'procfs', what: 'host paths visible in the mount table', batch: 'procfs', informational: true,
    judge: refusedOr((f) => ({ blocked: f.kv.hostpaths?.split(' ')[0] === '0', detail: `host path lines: ${f.kv.hostpaths ?? 'no result'}` })),
  },
  {
    name: 'umount emulated /proc files', category: 'procfs', what: 'umount /proc/uptime and /proc/meminfo (SYS_ADMIN) to see the host values', batch: 'procfs-unmask',
    judge: (f, c) => (f.refused ? { blocked: true, detail: refusal(f) } : {
      blocked: Number(f.kv.uptime_after) < 120 && f.kv.memtotal_after !== undefined && Number(f.kv.memtotal_after) !== c.host.memTotalKb,
      detail: `umount exits ${f.kv.umount_uptime ?? '-'}/${f.kv.umount_meminfo ?? '-'}, then uptime ${f.kv.uptime_after ?? '-'} s, MemTotal ${f.kv.memtotal_after ?? '-'} kB`,
    }),
  },
  {
    name: 'fresh procfs mount', category: 'procfs', what: 'mount -t proc beside the emulated /proc (SYS_ADMIN) and read uptime/meminfo', batch: 'procfs-unmask',
    judge: (f, c) => {
      if (f.refused) return { blocked: true, detail: refusal(f) };
      const v = f.kv.fresh_proc;
      const [, up, mem] = (v ?? '').split(' ');
      return { blocked: v !== undefined && (!isOk(v) || (Number(up) < 120 && Number(mem) !== c.host.memTotalKb)), detail: `mount -t proc: ${v ?? 'no result'}` };
    },
  },
  { name: '/proc/kcore (unmasked)', category: 'procfs', what: 'read kcore with systempaths=unconfined', batch: 'procfs', judge: allFail('kcore') },
  // setuid planting on a shared volume
  { name: 'chmod u+s', category: 'setuid', what: 'chmod u+s a file on a volume', batch: 'setuid', judge: noSetid('file') },
  { name: 'fchmod S_ISUID', category: 'setuid', what: 'fchmod 04755 on a volume', batch: 'setuid', judge: noSetid('fchmod', 'fchmod_suid') },
  { name: 'open(O_CREAT, S_ISUID)', category: 'setuid', what: 'create a file with mode 04755', batch: 'setuid', judge: noSetid('open', 'open_creat_suid') },
  { name: 'fchmodat + fchmodat2', category: 'setuid', what: 'fchmodat and fchmodat2 04755 on one file', batch: 'setuid', judge: noSetid('f', 'fchmodat_suid', 'fchmodat2_suid') },
  { name: 'O_TMPFILE + linkat', category: 'setuid', what: 'an anonymous 04755 file linked in', batch: 'setuid', judge: noSetid('tmpfile', 'o_tmpfile_suid') },
  { name: 'mknod S_ISUID', category: 'setuid', what: 'mknod a regular file 04755', batch: 'setuid', judge: noSetid('mknod', 'mknod_suid') },
  // CVEs
  { name: 'CVE-2024-21626 run -w', category: 'cve', what: 'docker run -w /proc/self/fd/N: cwd in a leaked host fd', batch: 'cve-2024-21626', judge: cwdLeak('run_fd') },
  { name: 'CVE-2024-21626 exec -w', category: 'cve', what: 'docker exec -w /proc/self/fd/N', batch: 'cve-2024-21626', judge: cwdLeak('exec_fd') },
  {
    name: 'CVE-2019-5736 runtime exe', category: 'cve', what: "reopen the runtime's /proc/<pid>/exe for writing during exec", batch: 'runtime-exe',
    judge: refusedOr((f) => ({ blocked: f.kv.exe_write_open !== undefined && !isOk(f.kv.exe_write_open), detail: `exe links opened ${f.kv.exe_seen ?? '-'} (${f.kv.exe_targets ?? '-'}), processes refused ${f.kv.exe_denied ?? '-'}, write-open ${f.kv.exe_write_open ?? 'no result'}` })),
  },
  // The bus (issue 13): a host user, not a container
  {
    name: 'bus as an unprivileged user', category: 'bus', what: 'nobody: connect to the bus with no or a guessed password, read either credentials file', batch: 'bus',
    judge: (f) => {
      const k = f.kv;
      const blocked = /^refused/.test(k.alone_anonymous ?? '') && /^refused/.test(k.alone_guess ?? '') && k.alone_readManager === 'EACCES' && k.alone_readObserver === 'EACCES';
      return { blocked, detail: `anonymous ${k.alone_anonymous ?? 'no result'}; guess ${k.alone_guess ?? 'no result'}; manager creds ${k.alone_readManager ?? '-'}, observer creds ${k.alone_readObserver ?? '-'}` };
    },
  },
  {
    name: 'purge the audit stream', category: 'bus', what: 'with the read-only observer login: purge, delete or shrink ECI_EVENTS, forge an event', batch: 'bus',
    judge: (f) => {
      const keys = ['member_purge', 'member_delete', 'member_update', 'member_forge'];
      const blocked = /^refused/.test(f.kv.alone_anonymous ?? '') && keys.every((k) => /Permissions Violation/.test(f.kv[k] ?? ''));
      return { blocked, detail: keys.map((k) => `${k.slice(7)}: ${(f.kv[k] ?? 'no result').slice(0, 60)}`).join('; ') };
    },
  },
  {
    name: 'steer the manager over the bus', category: 'bus', what: 'with the observer login: allocate/free a range, set a host sysctl, ask the vetter, write KV', batch: 'bus',
    judge: (f) => {
      const keys = ['member_allocate', 'member_free', 'member_sysctl', 'member_decide', 'member_kvWrite'];
      const blocked = keys.every((k) => /Permissions Violation/.test(f.kv[k] ?? ''));
      return { blocked, detail: keys.map((k) => `${k.slice(7)}: ${(f.kv[k] ?? 'no result').slice(0, 50)}`).join('; ') };
    },
  },
];
