// Whose namespace a spec asks to join: a namespace path (`/proc/<pid>/ns/net`, a bind-mounted nsfs
// file) is matched by the namespace's device and inode against the namespaces of the manager's live
// containers' init processes, never by its text (a pid in a path can be anyone's).
import { statSync } from 'node:fs';
import { EciError } from '../errors.ts';

/** A live container that others may join: its group and the host pid of its init. */
export interface JoinCandidate { id: string; group: string; pid: number }

/** The /proc/<pid>/ns/<name> entry of an OCI namespace type. */
export function nsEntry(type: string): string {
  return type === 'network' ? 'net' : type === 'mount' ? 'mnt' : type;
}

export type NsStat = (path: string) => { dev: number | bigint; ino: number | bigint };

/**
 * The candidate whose init is in the `type` namespace at `path`, or undefined when none is (the
 * namespace is the host's, a container's eci does not isolate, or made by a CNI plugin). A path that
 * cannot be stat'ed is refused (fail closed); a candidate whose init is gone is skipped.
 */
export function namespaceOwner(type: string, path: string, candidates: Iterable<JoinCandidate>, stat: NsStat = statSync): JoinCandidate | undefined {
  let want;
  try {
    want = stat(path);
  } catch (e) {
    throw new EciError('EJOINNS', `cannot check the ${type} namespace ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): refusing to join it`);
  }
  for (const c of candidates) {
    let have;
    try {
      have = stat(`/proc/${c.pid}/ns/${nsEntry(type)}`);
    } catch {
      continue;
    }
    if (have.dev === want.dev && have.ino === want.ino) return c;
  }
  return undefined;
}
