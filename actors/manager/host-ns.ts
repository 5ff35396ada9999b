// "The host" namespaces: where the manager runs, and where pid 1 runs (they differ inside sandboxes).
// A container spec may not join any of them.
import { statSync } from 'node:fs';
import { EciError } from '../errors.ts';

const TYPES = ['pid', 'ipc', 'uts', 'mnt', 'net', 'user', 'cgroup'];

export class HostNamespaces {
  private readonly ns = new Set<string>();

  /** Notes the namespaces of this process and of pid 1. */
  constructor() {
    for (const t of TYPES) {
      for (const who of ['self', '1']) {
        try {
          const s = statSync(`/proc/${who}/ns/${t}`);
          this.ns.add(`${t}:${s.dev}:${s.ino}`);
        } catch { /* namespace type not supported by this kernel */ }
      }
    }
  }

  /** Whether the namespace at `path` (an OCI namespace type) is one of the host's. */
  has(type: string, path: string): boolean {
    const t = type === 'network' ? 'net' : type === 'mount' ? 'mnt' : type;
    let s;
    try {
      s = statSync(path);
    } catch (e) {
      // Fail closed: a namespace eci cannot identify might be the host's.
      throw new EciError('EHOSTNS', `cannot check the ${type} namespace ${path} (${(e as NodeJS.ErrnoException).code}): refusing to join it`);
    }
    return this.ns.has(`${t}:${s.dev}:${s.ino}`);
  }
}
