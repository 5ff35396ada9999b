// Whether a container's process is systemd, so that it gets what systemd needs as PID 1
// (spec/system-init.ts, cgroup-delegation.ts, the stop signal). The rule: process.args[0], resolved
// inside the container's rootfs (PATH lookup for a bare name, symlinks followed without leaving the
// rootfs), names a file called `systemd`. Debian's /sbin/init -> /lib/systemd/systemd (through the
// /sbin -> usr/sbin link) qualifies; busybox, tini or dumb-init as /sbin/init do not, since they
// neither need a delegated cgroup nor halt on SIGRTMIN+3.
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { mountAt, parseMountInfo } from './mountinfo.ts';
import type { OciSpec } from './runc/spec.ts';
import type { CgroupLayout, SystemInit } from './spec/system-init.ts';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_LINKS = 40; // as the kernel's ELOOP bound

/** `path` (absolute, inside `root`) with every symlink followed inside `root`; undefined if it does not exist or loops. */
export function resolveInRoot(root: string, path: string): string | undefined {
  let links = 0;
  let done: string[] = [];
  let todo = path.split('/').filter(Boolean);
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') { done.pop(); continue; }
    const inside = `/${[...done, part].join('/')}`;
    let st;
    try {
      st = lstatSync(join(root, inside));
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) { done.push(part); continue; }
    if (++links > MAX_LINKS) return undefined;
    const target = readlinkSync(join(root, inside));
    // An absolute target starts again at the rootfs' root, never the host's.
    if (target.startsWith('/')) done = [];
    todo = [...target.split('/').filter(Boolean), ...todo];
  }
  return `/${done.join('/')}`;
}

/** process.args[0] as a path inside the rootfs (a bare name looked up in the process's PATH). */
function programPath(root: string, spec: OciSpec): string | undefined {
  const proc = spec.process as { args?: unknown; env?: unknown } | undefined;
  const arg0 = Array.isArray(proc?.args) && typeof proc.args[0] === 'string' ? proc.args[0] : undefined;
  if (!arg0) return undefined;
  if (arg0.includes('/')) return posix.isAbsolute(arg0) ? arg0 : undefined;
  const env = Array.isArray(proc?.env) ? (proc.env as unknown[]).filter((e): e is string => typeof e === 'string') : [];
  const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  return path.split(':').filter((d) => d.startsWith('/')).map((d) => posix.join(d, arg0)).find((p) => resolveInRoot(root, p) !== undefined);
}

/** The engine as systemd's detect-virt names it, from the marker file it leaves in the rootfs. */
function engineOf(root: string): string {
  if (existsSync(join(root, '.dockerenv'))) return 'docker';
  if (existsSync(join(root, 'run/.containerenv'))) return 'podman';
  return 'eci';
}

/** The host's cgroup layout, from its mountinfo text (as runc decides it: what is mounted at /sys/fs/cgroup). */
export function cgroupLayout(mountinfo: string): CgroupLayout {
  const mounts = parseMountInfo(mountinfo);
  if (mountAt(mounts, '/sys/fs/cgroup')?.fsType === 'cgroup2') return 'v2';
  return mountAt(mounts, '/sys/fs/cgroup/unified')?.fsType === 'cgroup2' ? 'hybrid' : 'v1';
}

let layout: CgroupLayout | undefined;

/** The host's cgroup layout (read once). */
export function hostCgroupLayout(): CgroupLayout {
  return (layout ??= cgroupLayout(readFileSync('/proc/self/mountinfo', 'utf8')));
}

/** What PID 1 gets when it is systemd; undefined for any other process. `root` is the rootfs on the host. */
export function detectSystemInit(spec: OciSpec, root: string): SystemInit | undefined {
  let real: string | undefined;
  try {
    const program = programPath(root, spec);
    real = program && resolveInRoot(root, program);
  } catch {
    return undefined; // the rootfs changed under us (a link gone between lstat and readlink): not systemd as far as we know
  }
  if (!real || basename(real) !== 'systemd') return undefined;
  return { container: engineOf(root), cgroups: hostCgroupLayout() };
}
