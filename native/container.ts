// Changes made inside a running container's namespaces by eci-helper, for what runc refuses in a user
// namespace: binds over /proc/sys entries (bind-into), the NIS domain name (set-domainname).
import { isAbsolute } from 'node:path';
import { usageError } from './errors.ts';
import { runHelper } from './helpers.ts';

/**
 * Puts a clone of the host mount at `source` (an eci FUSE file) over `target` inside the container
 * of process `pid` (eci-helper bind-into): for targets runc refuses, such as /proc/sys entries.
 */
export async function bindInto(pid: number, source: string, target: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw usageError(`bindInto: bad pid ${pid}`);
  if (!isAbsolute(source) || !isAbsolute(target)) throw usageError('bindInto needs absolute paths');
  await runHelper(['bind-into', '--pid', String(pid), '--source', source, '--target', target]);
}

/**
 * bindInto for many files in one helper run (a container gets a dozen). A target missing in the
 * container is skipped; another failure stops there (earlier pairs stay) and rejects.
 */
export async function bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw usageError(`bindIntoMany: bad pid ${pid}`);
  if (pairs.length === 0) return;
  if (pairs.length > 64) throw usageError('bindIntoMany: at most 64 files per run');
  if (pairs.some((p) => !isAbsolute(p.source) || !isAbsolute(p.target))) throw usageError('bindIntoMany needs absolute paths');
  await runHelper(['bind-into', '--pid', String(pid), ...pairs.flatMap((p) => ['--source', p.source, '--target', p.target])]);
}

/**
 * setdomainname(2) in the UTS namespace of process `pid` (a container's init), entered through its
 * user namespace (eci-helper set-domainname): for Docker's --domainname, which runc would write to
 * /proc/sys, refused in a user namespace.
 */
export async function setDomainname(pid: number, name: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw usageError(`setDomainname: bad pid ${pid}`);
  if (Buffer.byteLength(name) > 64 || name.includes('\0')) throw usageError('setDomainname: a domain name is at most 64 bytes, without NUL');
  await runHelper(['set-domainname', '--pid', String(pid), '--name', name]);
}
