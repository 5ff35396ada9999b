// The cgroup subtree a systemd container owns. runc creates the container's cgroups during `create`
// (before the container's process runs: it waits on runc's exec fifo until `start`); eci then hands
// the directory of each hierarchy systemd manages to container root, as cgroups(7) "Cgroup
// delegation" describes: the directory (so it can make child cgroups) and the files that move
// processes and enable controllers, never a limit file. The container therefore can arrange its own
// processes below its cgroup but neither raise that cgroup's limits (memory.max, memory.limit_in_bytes,
// pids.max, cgroup.max.* stay host root's) nor leave it: its cgroup namespace's root is that cgroup,
// and moving a process needs write access to the common ancestor's cgroup.procs (v2).
import { chownSync, existsSync, readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { EciError } from './errors.ts';

const CGROUP_ROOT = '/sys/fs/cgroup/';

/** How one hierarchy is handed over: where it may be mounted (most specific first) and the files handed over. */
interface Rule { roots: (dir: string) => readonly string[]; files: readonly string[] }

/** The files of a v1 cgroup that place processes (a v1 hierarchy's limit files are never among them). */
const V1_FILES: readonly string[] = ['cgroup.procs', 'tasks', 'cgroup.clone_children'];

/** By runc's state.json key (cgroup_paths): the hierarchies systemd manages. */
const DELEGATED: Readonly<Record<string, Rule>> = Object.freeze({
  // cgroup v2, the unified part of a hybrid host or the whole of a v2 host: cgroups(7)'s list.
  '': { roots: () => ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'], files: ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads'] },
  // The named v1 hierarchy systemd tracks its units in (legacy and hybrid hosts); it has no controllers.
  'name=systemd': { roots: () => ['/sys/fs/cgroup/systemd'], files: V1_FILES },
});

/**
 * A v1 controller hierarchy (memory, pids, cpuset, ...): mounted at /sys/fs/cgroup/<mount>, whose
 * name need not be the key's (cpu is at cpu,cpuacct).
 */
const V1_CONTROLLER: Rule = {
  roots: (dir) => (dir.startsWith(CGROUP_ROOT) ? [CGROUP_ROOT + dir.slice(CGROUP_ROOT.length).split('/')[0]] : []),
  files: V1_FILES,
};

export interface Delegation { hierarchy: string; dir: string; files: readonly string[] }

/**
 * What to hand over, from runc's cgroup_paths. v1 controller hierarchies only with `controllers`
 * (an inner engine's runc makes its containers' cgroups in each of them): the container can then
 * make child cgroups and set their limits, which the kernel keeps within its own (hierarchical on
 * 6.x); its own cgroup's limit files stay host root's.
 */
export function delegationPlan(cgroupPaths: Record<string, string>, o: { controllers?: boolean } = {}): Delegation[] {
  const controllers = o.controllers ? Object.keys(cgroupPaths).filter((h) => !(h in DELEGATED)) : [];
  const rules: [string, Rule][] = [...controllers.map((h): [string, Rule] => [h, V1_CONTROLLER]), ...Object.entries(DELEGATED)];
  const out: Delegation[] = [];
  for (const [hierarchy, { roots, files }] of rules) {
    const dir = cgroupPaths[hierarchy];
    if (typeof dir !== 'string' || normalize(dir) !== dir) continue;
    // Only a container's own cgroup strictly below the hierarchy's root, never the root itself.
    const root = roots(dir).find((r) => dir === r || dir === `${r}/` || dir.startsWith(`${r}/`));
    if (!root || dir.slice(root.length).split('/').filter(Boolean).length === 0) continue;
    out.push({ hierarchy, dir, files });
  }
  return out;
}

/**
 * Chowns the container's delegated cgroup directories to its root (`uid`/`gid` are host ids),
 * reading where runc put them from its state dir. Returns what was delegated.
 */
export function delegateCgroups(runcStateDir: string, uid: number, gid: number, o: { controllers?: boolean } = {}): Delegation[] {
  let paths: Record<string, string>;
  try {
    paths = (JSON.parse(readFileSync(join(runcStateDir, 'state.json'), 'utf8')) as { cgroup_paths?: Record<string, string> }).cgroup_paths ?? {};
  } catch (e) {
    throw new EciError('ECGROUP', `cannot read runc's state in ${runcStateDir}: ${(e as Error).message}`);
  }
  const plan = delegationPlan(paths, o).filter((d) => existsSync(d.dir));
  for (const d of plan) {
    try {
      chownSync(d.dir, uid, gid);
      for (const f of d.files) if (existsSync(join(d.dir, f))) chownSync(join(d.dir, f), uid, gid);
    } catch (e) {
      throw new EciError('ECGROUP', `cannot delegate cgroup ${d.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return plan;
}
