// The host sysctls a container may raise ("host = max" in Sysbox) that are global on Linux 6.x, with
// the range the kernel accepts. Checked on 6.18: net.core.somaxconn and net.unix.max_dgram_qlen are
// per network namespace (a container sets its own through the kernel, nothing to reconcile);
// net.netfilter.nf_conntrack_max is one global value, read-only (0444) outside the initial netns;
// net.ipv4.vs.conntrack (IPVS) and the nf_conntrack_*_timeout entries are per netns.
export interface SysctlKey {
  /** Dotted sysctl name. */
  key: string;
  /** Host path under /proc/sys. */
  path: string;
  /** File name in the sysctl FUSE directory. */
  file: string;
  min: number;
  max: number;
}

const entry = (key: string, min: number, max: number): SysctlKey => ({
  key, min, max, path: key.replace(/\./g, '/'), file: `sys-${key.replace(/[._]/g, '-')}`,
});

export const RECONCILED: readonly SysctlKey[] = [
  entry('fs.file-max', 0, Number.MAX_SAFE_INTEGER), // unsigned long, proc_doulongvec_minmax up to LONG_MAX
  entry('fs.nr_open', 64, 2147483584), // sysctl_nr_open_min/max on 64-bit
  entry('net.netfilter.nf_conntrack_max', 0, 2147483647), // int; absent without nf_conntrack
];

export function keyByFile(file: string, keys: readonly SysctlKey[] = RECONCILED): SysctlKey | undefined {
  return keys.find((k) => k.file === file);
}

export function keyByName(key: string, keys: readonly SysctlKey[] = RECONCILED): SysctlKey | undefined {
  return keys.find((k) => k.key === key);
}

export class SysctlValueError extends Error {
  readonly code = 'EINVAL';
}

/**
 * Parses what a process wrote to a sysctl file: one decimal integer, optional surrounding blanks and
 * newline, within [min, max]. Throws SysctlValueError (EINVAL) otherwise.
 */
export function parseValue(k: SysctlKey, text: string): number {
  const m = /^[ \t\n]*(\d{1,20})[ \t\n]*$/.exec(text);
  if (!m) throw new SysctlValueError(`${k.key}: ${JSON.stringify(text.slice(0, 40))} is not a non-negative integer`);
  const v = Number(m[1]);
  if (!Number.isSafeInteger(v) || v < k.min || v > k.max) throw new SysctlValueError(`${k.key}: ${m[1]} is outside ${k.min}..${k.max}`);
  return v;
}
