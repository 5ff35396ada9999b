// OCI bundles on a busybox directory rootfs, and bin/eci-runc run the way containerd would: for the
// fault tests, which need many short-lived containers and no engine in the way.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBusyboxRootfs } from './busybox.ts';
import { REPO } from './manager.ts';

export const ECI_RUNC = join(REPO, 'bin/eci-runc');

export interface RunResult { code: number | null; stdout: string; stderr: string }

/** bin/eci-runc with `args`; `extraFd` becomes its fd 3 (for --preserve-fds). */
export function eciRunc(args: string[], env: Record<string, string>, o: { cwd?: string; extraFd?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
    if (o.extraFd !== undefined) stdio.push(o.extraFd);
    const p = spawn(ECI_RUNC, args, { env: { ...process.env, ...env }, cwd: o.cwd, stdio });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d));
    p.stderr!.on('data', (d: Buffer) => (stderr += d));
    p.on('error', reject);
    // `create` hands our pipes to the container, so they stay open: settle on exit, not close.
    p.on('exit', (code) => setTimeout(() => resolve({ code, stdout, stderr }), 50));
  });
}

/** A bundle dir with a busybox rootfs running `args`. */
export async function makeBundle(dir: string, args: string[], patch: (spec: Record<string, any>) => void = () => {}): Promise<string> {
  await makeBusyboxRootfs(join(dir, 'rootfs'));
  const spec = {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
    root: { path: 'rootfs', readonly: false },
    hostname: 'eci',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    ],
    linux: { namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })) },
  };
  patch(spec);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

/** Mount points at or under any of `dirs`. */
export function mountsUnder(...dirs: string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4])
    .filter((p) => p && dirs.some((d) => p === d || p.startsWith(`${d}/`)));
}

/** Which processes a listing counts: `zombies: false` leaves out those that have exited (state Z) and wait for a reaper. */
export interface ProcOpts { zombies: boolean }

/** Each process's stat fields after its name (state first, then ppid), by pid. */
function procStats(): Array<{ pid: number; state: string; ppid: number }> {
  const out: Array<{ pid: number; state: string; ppid: number }> = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(e), state: fields[0]!, ppid: Number(fields[1]) });
    } catch { /* gone */ }
  }
  return out;
}

/** ppid's children; zombies included unless `{ zombies: false }`. */
export function childrenOf(ppid: number, opts: ProcOpts = { zombies: true }): number[] {
  return procStats().filter((p) => p.ppid === ppid && (opts.zombies || p.state !== 'Z')).map((p) => p.pid);
}

/** This process's `eci-helper perform` children (the performers), zombies included or not as asked. */
export function performers(opts: ProcOpts): number[] {
  return childrenOf(process.pid, opts).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv[0]?.endsWith('eci-helper') && argv[1] === 'perform';
    } catch {
      return false; /* gone */
    }
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(f: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A live process (a zombie waiting for a reaper has already exited and holds nothing). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
