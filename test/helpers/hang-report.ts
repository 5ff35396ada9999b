// When an engine command on one container hangs (seen once in CI: a `docker rm -f` of 100 at once
// that never returned), says whose hang it is: a runtime call of eci's still pending for that
// container (eci-runc waiting on the manager), or the engine itself (nothing of eci's pending, and
// the manager has released the container or still runs it untouched). With the engine's goroutines
// summarised (dockerd dumps them on SIGUSR1), so a CI log alone can be read.
import { readdirSync, readFileSync } from 'node:fs';
import type { Dockerd } from './dockerd.ts';
import type { TestManager } from './manager.ts';

export interface HangReport {
  /** An eci-runc call for the container is still running (the launcher, not a runc it exec'd). */
  eciPending: boolean;
  text: string;
}

const CLK_TCK = 100;

function processes(): { pid: number; argv: string[]; ageS: number }[] {
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const out: { pid: number; argv: string[]; ageS: number }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) / CLK_TCK;
      out.push({ pid: Number(e), argv, ageS: Math.round(uptime - start) });
    } catch { /* gone */ }
  }
  return out;
}

/** dockerd's goroutines, grouped by wait state and first daemon frame, those waiting a minute or more. */
async function dockerdGoroutines(d: Dockerd): Promise<string> {
  const log = `${d.dir}/dockerd.log`;
  const before = readFileSync(log, 'utf8').length;
  try {
    process.kill(d.pid, 'SIGUSR1');
  } catch {
    return '(dockerd gone)';
  }
  let file: string | undefined;
  for (let i = 0; i < 50 && !file; i++) {
    await new Promise((r) => setTimeout(r, 100));
    file = /goroutine stacks written to ([^"\s]+)/.exec(readFileSync(log, 'utf8').slice(before))?.[1];
  }
  if (!file) return '(no goroutine dump from dockerd)';
  const counts = new Map<string, number>();
  for (const g of readFileSync(file, 'utf8').split('\n\n')) {
    const head = /^goroutine \d+ \[([^\]]+)\]/.exec(g);
    if (!head || !/minutes/.test(head[1])) continue;
    const frame = /(?:docker\/docker|moby\/moby)\/(daemon[\w/]*\.\(?\*?\w*\)?\.?\w+)/.exec(g)?.[1] ?? g.split('\n')[1];
    const k = `[${head[1].replace(/\d+ minutes/, 'N minutes')}] ${frame}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, n]) => `  ${n} × ${k}`).join('\n') || '  (none waiting a minute or more)';
}

export async function hangReport(d: Dockerd, m: TestManager, ref: string): Promise<HangReport> {
  // By name (the bench's containers): eci and the runtime calls know the id.
  const id = /^[0-9a-f]{64}$/.test(ref) ? ref
    : (await d.docker(['inspect', '-f', '{{.Id}}', ref], { timeoutMs: 10_000 }).catch(() => undefined))?.stdout.trim() || ref;
  const procs = processes().filter((p) => p.argv.some((a) => a.includes(id)));
  const launcher = procs.filter((p) => /eci-runc$/.test(p.argv[0] ?? '') || (p.argv[0] === '/bin/sh' && /eci-runc/.test(p.argv[1] ?? '')));
  let eci: string;
  try {
    const ps = await m.ps();
    const c = ps.containers.find((x) => x.id === id);
    eci = c ? `manager: ${c.state}${Object.values(ps.ranges).includes(id) ? ', range held' : ''}` : 'manager: released';
  } catch (e) {
    eci = `manager: no answer (${(e as Error).message})`;
  }
  const text = [
    `hang report for ${id}:`,
    `  ${eci}`,
    ...procs.map((p) => `  pid ${p.pid} (${p.ageS} s): ${p.argv.join(' ').replaceAll(id, '<id>').slice(0, 200)}`),
    'dockerd goroutines waiting a minute or more:',
    await dockerdGoroutines(d),
  ].join('\n');
  return { eciPending: launcher.length > 0, text };
}
