// What --privileged needs that this host's bounding set lacks: Docker asks for every capability it
// knows, and runc (also an inner one, under eci) fails with "unable to apply caps" when the host
// cannot give one. Tests then use the closest equivalent flags instead.
import { readFileSync } from 'node:fs';

/** Docker 20.10's capability names, by number, up to CAP_CHECKPOINT_RESTORE (40). */
const NAMES = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE',
  'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE',
  'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'];

/** Host capabilities runc would have to grant for --privileged. */
export function missingCaps(): string[] {
  const bnd = BigInt('0x' + /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  return NAMES.filter((_, i) => !(bnd & (1n << BigInt(i))));
}

/** --privileged's capabilities, seccomp and /proc without the `missing` capabilities (devices aside). */
export function privilegedWithout(missing: readonly string[]): string[] {
  return ['--cap-add', 'ALL', ...missing.flatMap((c) => ['--cap-drop', c]), '--security-opt', 'seccomp=unconfined', '--security-opt', 'systempaths=unconfined'];
}

/** `--privileged`, or where the host lacks capabilities its closest equivalent (devices aside). */
export function privilegedFlags(): string[] {
  const missing = missingCaps();
  return missing.length ? privilegedWithout(missing) : ['--privileged'];
}
