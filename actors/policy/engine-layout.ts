// Where an engine keeps this container's own files, its named volumes and its other containers,
// learned from the create call itself (bundle path, --pid-file, root path), never from a list of
// default install paths: a dockerd with another --data-root or a Podman with another storage root
// is recognised the same way. Pure; every path is derived for THIS container id only.
//   Docker:  bundle  <exec-root>/containerd/daemon/io.containerd.runtime.v2.task/moby/<id>
//            root    <data-root>/overlay2/<layer>/merged
//            files   <data-root>/containers/<id>/{hosts,hostname,resolv.conf,mounts/shm}
//            volumes <data-root>/volumes/<name>/_data
//   Podman:  bundle  <graphroot>/overlay-containers/<id>/userdata (also its /dev/shm)
//            pidfile <runroot>/overlay-containers/<id>/userdata/pidfile (hosts, hostname, resolv.conf, .containerenv)
//            volumes <graphroot>/volumes/<name>/_data
//   containerd (ctr, CRI): bundle <state>/io.containerd.runtime.v2.task/<namespace>/<id>
import { dirname, normalize } from 'node:path';
import type { OciSpec } from '../runc/spec.ts';

export interface EngineLayout {
  /** This container's own engine dirs: binds from inside them are the engine's files. */
  ownDirs: string[];
  /** Dirs whose `<name>/_data` children are the engine's named volumes. */
  volumeRoots: string[];
  /** Dirs holding every container's engine files (others' too): restricted by name. */
  containerDirs: string[];
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * `joined`: eci containers whose namespaces this one joins (its group): the engine gives it their
 * files (Docker's --network container:X mounts X's hosts, hostname and resolv.conf, --ipc X's shm).
 */
export function engineLayout(spec: OciSpec, c: { id: string; bundle: string; pidFile?: string; joined?: readonly string[] }): EngineLayout {
  const bundle = normalize(c.bundle);
  const id = esc(c.id);
  const out: EngineLayout = { ownDirs: [bundle], volumeRoots: [], containerDirs: [] };
  const rootPath = typeof spec.root?.path === 'string' ? normalize(spec.root.path) : '';

  // containerd's task dirs (Docker's are its namespace "moby"): the siblings are other containers' bundles.
  const task = new RegExp(`^(/.+/io\\.containerd\\.runtime\\.v2\\.task/[^/]+)/${id}$`).exec(bundle);
  if (task) out.containerDirs.push(task[1]);

  if (task && task[1].endsWith('/moby')) {
    const dataRoot = /^(\/.+)\/overlay2\/[^/]+\/merged$/.exec(rootPath)?.[1];
    if (dataRoot) {
      out.ownDirs.push(`${dataRoot}/containers/${c.id}`);
      for (const j of c.joined ?? []) if (isPlainId(j)) out.ownDirs.push(`${dataRoot}/containers/${j}`);
      out.volumeRoots.push(`${dataRoot}/volumes`);
      out.containerDirs.push(`${dataRoot}/containers`);
    }
  }

  const graph = new RegExp(`^(/.+)/overlay-containers/${id}/userdata$`).exec(bundle);
  if (graph) {
    out.volumeRoots.push(`${graph[1]}/volumes`);
    out.containerDirs.push(`${graph[1]}/overlay-containers`);
    const run = c.pidFile ? new RegExp(`^(/.+)/overlay-containers/${id}/userdata/pidfile$`).exec(normalize(c.pidFile)) : null;
    if (run) {
      out.ownDirs.push(dirname(normalize(c.pidFile!)));
      for (const j of c.joined ?? []) if (isPlainId(j)) out.ownDirs.push(`${run[1]}/overlay-containers/${j}/userdata`);
      if (run[1] !== graph[1]) out.containerDirs.push(`${run[1]}/overlay-containers`);
    }
  }
  return out;
}

/** An id that names exactly one directory (never `..` or a path). */
const isPlainId = (id: string) => /^[A-Za-z0-9_-]+$/.test(id);

/** Whether `path` (resolved) is one named volume's data dir under one of `roots` (resolved). */
export function isNamedVolume(path: string, roots: readonly string[]): boolean {
  return roots.some((r) => new RegExp(`^${esc(r)}/[^/]+/_data$`).test(path));
}

/** Where engines bind their `--init` binary, read-only, when the container's first argument is it. */
export const ENGINE_INIT_TARGETS = ['/sbin/docker-init', '/run/podman-init'];
/** Where such a binary may come from (dockerd's init-path, Podman's init_path: system binaries). */
export const SYSTEM_BINARY_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/usr/libexec', '/usr/local/libexec', '/bin', '/sbin'];
