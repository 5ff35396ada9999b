// Whether a file a container creates could be executed by an unprivileged host user: the question
// behind the setuid/setgid creation rules (actors/runc/seccomp.ts). A setuid-root file only matters
// where someone other than root can reach it. Fail closed: anything not proven unreachable counts as
// reachable, and then the rules stay.
import { statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

type StatFn = (path: string) => Pick<Stats, 'uid' | 'gid' | 'mode' | 'isDirectory'>;

/**
 * True unless `dir` or one of its ancestors is a root-owned directory that only root (and the root
 * group) may search: e.g. Docker's /var/lib/docker (0710 root:root), containerd's and Podman's 0700
 * stores, eci's own state dir. POSIX ACLs on those directories are not read (assumed absent).
 */
export function reachableByOthers(dir: string, stat: StatFn = statSync): boolean {
  let p = dir;
  for (;;) {
    let st;
    try {
      st = stat(p);
    } catch {
      return true; // cannot tell: keep the rules
    }
    if (st.isDirectory() && st.uid === 0 && (st.mode & 0o001) === 0 && ((st.mode & 0o010) === 0 || st.gid === 0)) return false;
    const up = dirname(p);
    if (up === p) return true;
    p = up;
  }
}

export interface ExposureInput {
  /** Where the container's own writes land: the overlay upper dir, or a plain rootfs directory. */
  rootfsWrites: string;
  rootfsReadonly: boolean;
  /** Host-shared bind mounts (volumes), as the policy decided them. */
  volumes: { readonly: boolean; isDir: boolean }[];
}

/** Whether the container needs the setuid/setgid creation rules. */
export function needsCreateRules(x: ExposureInput, reachable: (dir: string) => boolean = reachableByOthers): boolean {
  // A writable host directory is shared with the host by definition (files in it can be created).
  if (x.volumes.some((v) => !v.readonly && v.isDir)) return true;
  return !x.rootfsReadonly && reachable(x.rootfsWrites);
}
