// eci's id pool is recorded in /etc/subuid and /etc/subgid under its own name, so that useradd (which
// skips listed ranges) never hands a host user ids that a container's root runs as. A pool that some
// other entry already overlaps is refused: that user could become a container's root through
// newuidmap and reach its files.
import { chmodSync, closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { EciError } from '../errors.ts';

/** The name eci's reservation lines carry in /etc/subuid and /etc/subgid. */
export const SUBID_OWNER = 'eci';

export interface SubidEntry { owner: string; start: number; count: number; line: number }
export interface IdPool { base: number; size: number; count: number }

/** The entries of a subuid/subgid file (`owner:start:count`); comments, blank and malformed lines are skipped. */
export function parseSubid(text: string): SubidEntry[] {
  const out: SubidEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const m = /^([^:]+):(\d+):(\d+)$/.exec(l);
    if (m) out.push({ owner: m[1], start: Number(m[2]), count: Number(m[3]), line: i + 1 });
  });
  return out;
}

/** The host ids the pool covers: [first, end). */
export function poolSpan(p: IdPool): { first: number; end: number } {
  return { first: p.base, end: p.base + p.size * p.count };
}

/** Entries of other owners whose ids meet the pool. */
export function overlapping(entries: readonly SubidEntry[], pool: IdPool): SubidEntry[] {
  const { first, end } = poolSpan(pool);
  return entries.filter((e) => e.owner !== SUBID_OWNER && e.count > 0 && e.start < end && e.start + e.count > first);
}

/** The file text with eci's line for this pool added (unchanged if it is there already). */
export function withReservation(text: string, pool: IdPool): string {
  const { first, end } = poolSpan(pool);
  if (parseSubid(text).some((e) => e.owner === SUBID_OWNER && e.start === first && e.count === end - first)) return text;
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  return `${text}${sep}${SUBID_OWNER}:${first}:${end - first}\n`;
}

/** Throws one line naming the first other entry of `path` (text) that overlaps the pool. */
function assertNoOverlap(path: string, text: string, pool: IdPool, kind: 'uid' | 'gid'): void {
  const c = overlapping(parseSubid(text), pool)[0];
  if (!c) return;
  const { first, end } = poolSpan(pool);
  throw new EciError('ESUBID',
    `${path} line ${c.line} gives ${c.owner} ${kind}s ${c.start}..${c.start + c.count - 1}, which overlap eci's id pool ${first}..${end - 1}: that user could become a container's root`,
    { hint: `give ${c.owner} other ids (usermod --del-sub${kind}s/--add-sub${kind}s) or move eci's pool (idRange in the settings file)` });
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new EciError('ESUBID', `cannot read ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
}

/** Replaces the file atomically (temp file + rename), keeping its mode; a new file is 0644 as shadow-utils makes it. */
function replaceFile(path: string, text: string): void {
  let mode = 0o644;
  try { mode = statSync(path).mode & 0o7777; } catch { /* new file */ }
  const tmp = `${path}.eci-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; } };

/**
 * Runs `f` holding shadow-utils' lock on `path` (commonio: `<path>.lock`, made by link(2) from
 * `<path>.<pid>` holding the pid as text). useradd and usermod take the same lock, so neither loses
 * the other's write. A lock whose pid is gone is stale and taken over.
 */
export function withShadowLock<T>(path: string, f: () => T, waitMs = 5000): T {
  const lock = `${path}.lock`;
  const mine = `${path}.${process.pid}`;
  writeFileSync(mine, String(process.pid), { mode: 0o600 });
  try {
    for (const end = Date.now() + waitMs; ;) {
      try {
        linkSync(mine, lock);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new EciError('ESUBID', `cannot lock ${path} (${(e as NodeJS.ErrnoException).code})`);
      }
      let holder = NaN;
      try { holder = Number(readFileSync(lock, 'utf8').trim()); } catch { continue; /* just released */ }
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) { rmSync(lock, { force: true }); continue; }
      if (Date.now() > end) throw new EciError('ESUBID', `cannot lock ${path}: ${lock} is held by pid ${holder}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  } finally {
    rmSync(mine, { force: true });
  }
  try {
    return f();
  } finally {
    rmSync(lock, { force: true });
  }
}

/**
 * Checks that no other entry of `path` overlaps the pool, then records eci's line there, under
 * shadow-utils' lock of the file. Another writer that ignores the lock may still replace the file:
 * the line is checked again after the write and written again if it was lost.
 */
export function reservePool(path: string, pool: IdPool, kind: 'uid' | 'gid'): void {
  withShadowLock(path, () => reserveLocked(path, pool, kind));
}

function reserveLocked(path: string, pool: IdPool, kind: 'uid' | 'gid'): void {
  for (let attempt = 0; attempt < 5; attempt++) {
    const text = readOrEmpty(path);
    assertNoOverlap(path, text, pool, kind);
    const next = withReservation(text, pool);
    if (next === text) return;
    try {
      replaceFile(path, next);
    } catch (e) {
      throw new EciError('ESUBID', `cannot record eci's id pool in ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  throw new EciError('ESUBID', `cannot record eci's id pool in ${path}: the file keeps changing`);
}

export const SUBID_FILES: readonly [string, 'uid' | 'gid'][] = [['/etc/subuid', 'uid'], ['/etc/subgid', 'gid']];

/**
 * The manager's hold on its pool: reserved at start, and checked again before each create, since an
 * administrator can give a user ids at any time (usermod -v). A file is parsed again only when its
 * mtime changes, so the check costs two stats per create.
 */
export class SubidGuard {
  private clean = new Map<string, number>();
  constructor(readonly pool: IdPool, private readonly files = SUBID_FILES) {}

  reserve(): void {
    for (const [path, kind] of this.files) reservePool(path, this.pool, kind);
    this.clean.clear();
  }

  check(): void {
    for (const [path, kind] of this.files) {
      let mtime: number;
      try { mtime = statSync(path).mtimeMs; } catch { mtime = -1; }
      if (this.clean.get(path) === mtime) continue;
      assertNoOverlap(path, readOrEmpty(path), this.pool, kind);
      this.clean.set(path, mtime);
    }
  }
}
