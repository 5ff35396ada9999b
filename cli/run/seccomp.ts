// The seccomp profile `eci run` gives unprivileged containers (Docker gives its default profile;
// `--privileged` gets none, as with Docker). It is a deny list over a default ALLOW: the syscalls
// Docker's profile refuses always, and those it allows only with a capability, unless the container
// has that capability. Above all it stops nested user namespaces (unshare/clone with CLONE_NEW*,
// setns), which would give container root a full capability set over new namespaces and so reach
// kernel code Docker keeps out of reach. Pure. The manager then adds its notify rules (mount family,
// setuid chmods), which take those names out of this list's hands.
import type { OciSpec } from '../../actors/runc/spec.ts';

const EPERM = 1;
const ENOSYS = 38;

/** Refused whatever the capabilities (Docker's profile never allows them). */
export const ALWAYS_DENIED = [
  'add_key', 'keyctl', 'request_key', 'kexec_file_load', 'kexec_load', 'nfsservctl', 'uselib', 'vm86', 'vm86old',
  '_sysctl', 'get_kernel_syms', 'query_module', 'create_module', 'userfaultfd',
];

/** Refused unless the container holds the capability (Docker's "includes.caps" rules). */
export const DENIED_WITHOUT: Record<string, string[]> = {
  CAP_SYS_ADMIN: ['bpf', 'fanotify_init', 'lookup_dcookie', 'perf_event_open', 'quotactl', 'setdomainname', 'sethostname', 'setns', 'unshare', 'swapon', 'swapoff', 'pivot_root', 'name_to_handle_at'],
  CAP_SYS_MODULE: ['init_module', 'finit_module', 'delete_module'],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_TIME: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYSLOG: ['syslog'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
};

/** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: one rule per bit (any set -> refused). */
const CLONE_NEW = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

export function defaultSeccomp(caps: string[]): NonNullable<OciSpec['linux']>['seccomp'] {
  const held = new Set(caps);
  const denied = [...ALWAYS_DENIED, ...Object.entries(DENIED_WITHOUT).filter(([cap]) => !held.has(cap)).flatMap(([, names]) => names)];
  const syscalls: Record<string, unknown>[] = [{ names: denied, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }];
  if (!held.has('CAP_SYS_ADMIN')) {
    // clone's flags are its first argument on x86-64; clone3 passes them in memory, out of the
    // filter's reach: ENOSYS makes libc fall back to clone (Docker does the same).
    for (const bit of CLONE_NEW) syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: bit, valueTwo: bit, op: 'SCMP_CMP_MASKED_EQ' }] });
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], syscalls };
}
