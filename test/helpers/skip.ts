// Why an integration suite cannot run on this machine (null/'' when it can), for the suites that
// drive runc with eci's native code or a FUSE server directly.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { gccMissing } from './cprog.ts';

export const ADDON = new URL('../../native/build/Release/eci_native.node', import.meta.url);
export const HELPER = new URL('../../native/bin/eci-helper', import.meta.url);

/** Seccomp user notification with runc and the built native code (and gcc for the C probes, if asked). */
export function seccompSkipReason(o: { gcc?: boolean } = {}): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  const [maj, min] = release().split('.').map((x) => parseInt(x, 10));
  if (maj < 5 || (maj === 5 && min < 9)) return `needs kernel >= 5.9 (have ${release()})`;
  if (o.gcc && gccMissing) return gccMissing;
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'runc is not installed';
  }
  if (!existsSync(ADDON) || !existsSync(HELPER)) return 'native code not built (npm run build:native)';
  return null;
}

/** A FUSE server in this process and runc containers: '' when both are there. */
export function fuseRuncSkipReason(): string {
  const haveFuse = existsSync('/dev/fuse');
  const haveRunc = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].some(existsSync);
  return process.getuid?.() !== 0 ? 'needs root' : !haveFuse ? 'needs /dev/fuse' : !haveRunc ? 'needs runc' : '';
}

/** Whether `p` is a mount point of this process's mount namespace. */
export const isMounted = (p: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);
