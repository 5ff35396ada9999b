// CPU time spent by process trees during a bench phase, from /proc (utime+stime of the live
// processes plus cutime+cstime: what their reaped children used). A tree is read before and after the
// phase; processes that came and went inside it count through the parent that reaped them.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux

interface Proc { pid: number; ppid: number; comm: string; ms: number }

function readProcs(): Proc[] {
  const out: Proc[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' ');
      // fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
      out.push({ pid: Number(e), ppid: Number(f[1]), comm, ms: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS });
    } catch { /* gone */ }
  }
  return out;
}

/** Pids whose command line contains `text` (e.g. the shims of one dockerd: their -address is under its dir). */
function pidsWith(procs: readonly Proc[], comm: string, text: string): number[] {
  return procs.filter((p) => p.comm.startsWith(comm)).flatMap((p) => {
    try {
      return readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes(text) ? [p.pid] : [];
    } catch {
      return [];
    }
  });
}

/**
 * CPU ms per comm over the trees rooted at `roots` (each pid and its live descendants), plus those of
 * the containerd shims whose command line names `shimsOf` (they are reparented away from containerd).
 */
export function treeCpu(roots: readonly number[], shimsOf?: string): Map<string, number> {
  const procs = readProcs();
  if (shimsOf) roots = [...roots, ...pidsWith(procs, 'containerd-shim', shimsOf)];
  const kids = new Map<number, Proc[]>();
  for (const p of procs) kids.set(p.ppid, [...(kids.get(p.ppid) ?? []), p]);
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const out = new Map<string, number>();
  const seen = new Set<number>();
  const walk = (p: Proc | undefined) => {
    if (!p || seen.has(p.pid)) return;
    seen.add(p.pid);
    out.set(p.comm, (out.get(p.comm) ?? 0) + p.ms);
    for (const k of kids.get(p.pid) ?? []) walk(k);
  };
  for (const r of roots) walk(byPid.get(r));
  return out;
}

/** after - before, per comm (a comm absent before counts from 0; a tree gone after is left out). */
export function cpuDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) out[k] = v - (before.get(k) ?? 0);
  return out;
}
