// One manager per run/state dir: two would take each other's socket and undo each other's host
// sysctls. The lock is a file holding the owner's pid, made with link(2) so that exactly one of two
// starting managers gets it; a lock whose pid is gone (a crash) is taken over.
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { EciError } from '../errors.ts';

export const LOCK_FILE = 'manager.lock';

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22); undefined once it is gone or a zombie. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

/** The lock names its holder by pid and start time, so a reused pid is not taken for the holder. */
function holder(path: string): { pid: number; start: string } | undefined {
  try {
    const [pid, start] = readFileSync(path, 'utf8').trim().split(/\s+/);
    return Number.isInteger(Number(pid)) && Number(pid) > 0 ? { pid: Number(pid), start } : undefined;
  } catch {
    return undefined;
  }
}

const same = (a: { pid: number; start: string } | undefined, b: { pid: number; start: string } | undefined) =>
  !!a && !!b && a.pid === b.pid && a.start === b.start;

export interface ManagerLock { path: string; release(): void }

/** Takes the lock of `dir` for this process, or throws `another manager (pid N) is running on DIR`. */
export function lockDir(dir: string, pid = process.pid): ManagerLock {
  const path = join(dir, LOCK_FILE);
  const tmp = join(dir, `.${LOCK_FILE}.${pid}`);
  const me = { pid, start: startTimeOf(pid) ?? '?' };
  const fd = openSync(tmp, 'w', 0o600);
  try { writeSync(fd, `${me.pid} ${me.start}\n`); } finally { closeSync(fd); }
  const release = () => { if (same(holder(path), me)) rmSync(path, { force: true }); };
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path);
        return { path, release };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new EciError('ELOCK', `cannot lock ${dir} (${(e as NodeJS.ErrnoException).code})`);
      }
      const other = holder(path);
      if (same(other, me)) return { path, release };
      if (other && startTimeOf(other.pid) === other.start) {
        throw new EciError('ELOCKED', `another manager (pid ${other.pid}) is running on ${dir}`);
      }
      // Stale: move it aside under a name of our own, then try the link again. If two managers take
      // over at once, only one rename finds the stale file; the other finds the winner's lock next
      // round. What was moved aside is checked: a live lock moved by mistake goes back.
      const aside = `${tmp}.stale`;
      try { renameSync(path, aside); } catch { continue; /* someone else took it */ }
      if (!same(holder(aside), other)) { try { linkSync(aside, path); } catch { /* a newer lock is there */ } }
      rmSync(aside, { force: true });
    }
    throw new EciError('ELOCK', `cannot lock ${dir}: the lock keeps changing hands`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Locks every dir (in order, each once); a refusal releases what was taken. */
export function lockDirs(dirs: readonly string[]): ManagerLock {
  const held: ManagerLock[] = [];
  try {
    for (const d of new Set(dirs)) held.push(lockDir(d));
  } catch (e) {
    for (const l of held) l.release();
    throw e;
  }
  return { path: held.map((l) => l.path).join(' '), release: () => { for (const l of held.splice(0)) l.release(); } };
}
