// SysctlFs: per-container views of the reconciled host sysctls, as writable files of one FUSE
// directory (native mountRwFs), e.g. `sys-fs-file-max`, meant to be bound into containers. A caller is
// attributed, as by ProcFs, to the container whose init shares its pid namespace:
//   read  -> the value its container set, else the host's current value;
//   write -> one integer in range (else EINVAL) from the container's root (else EACCES) sets the
//            container's value through the reconciler (`eci.v1.sysctl.set` on the bus).
// Callers from no container read and write the host file itself.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountRwFs, type ProcFsMount } from '../../native/index.ts';
import * as info from '../procfs/container-info.ts';
import { sysctlSubjects } from '../../bus/subjects.ts';
import { RECONCILED, keyByFile, parseValue, type SysctlKey } from './keys.ts';
import type { SetResult } from './reconciler.actor.ts';

/** How the FUSE side talks to the reconciler: in-process (SysctlReconciler) or over the bus. */
export interface SysctlClient {
  set(container: string, key: string, value: number): Promise<SetResult>;
  valueOf(container: string, key: string): Promise<number | undefined> | number | undefined;
}

/** A SysctlClient over NATS request/reply (the reconciler serves sysctlSubjects.set/get). */
export function busSysctlClient(nc: { request(subject: string, data: string, o?: { timeout: number }): Promise<{ json<T>(): T }> }): SysctlClient {
  return {
    async set(container, key, value) {
      return (await nc.request(sysctlSubjects.set, JSON.stringify({ container, key, value }), { timeout: 1500 })).json<SetResult>();
    },
    async valueOf(container, key) {
      return (await nc.request(sysctlSubjects.get, JSON.stringify({ container, key }), { timeout: 1500 })).json<{ value?: number }>().value;
    },
  };
}

export interface SysctlFsOptions {
  client: SysctlClient;
  /** Reconciled entries served (default RECONCILED). */
  keys?: readonly SysctlKey[];
  roots?: info.Roots;
  /** Host /proc/sys (tests). */
  procSys?: string;
  mount?: typeof mountRwFs;
}

const errno = (code: string, message: string) => Object.assign(new Error(message), { code });

/** True when host uid `uid` is root (0) in the user namespace of host pid `pid`. */
export async function isContainerRoot(pid: number, uid: number, roots: info.Roots = {}): Promise<boolean> {
  let map: string;
  try {
    map = await readFile(join(roots.proc ?? '/proc', String(pid), 'uid_map'), 'utf8');
  } catch {
    return false;
  }
  for (const line of map.split('\n')) {
    const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
    if (!Number.isInteger(count)) continue;
    if (uid >= outside && uid < outside + count) return uid - outside + inside === 0;
  }
  return false;
}

export class SysctlFs {
  private readonly keys: readonly SysctlKey[];
  private readonly containers = new Map<string, info.KnownContainer>();
  private handle: ProcFsMount | undefined;

  constructor(private o: SysctlFsOptions) {
    this.keys = o.keys ?? RECONCILED;
  }

  /** File names served. */
  files(): string[] {
    return this.keys.map((k) => k.file);
  }

  async start(mountpoint: string): Promise<void> {
    if (this.handle) throw new Error('SysctlFs is already mounted');
    const files = this.files();
    this.handle = (this.o.mount ?? mountRwFs)({ mountpoint, files, writable: files },
      (file, pid) => this.read(file, pid), (file, pid, uid, data) => this.write(file, pid, uid, data));
  }

  register(containerId: string, initPid: number): void {
    const pidns = info.pidNamespaceOfSync(initPid, this.o.roots ?? {});
    if (pidns === undefined) throw new Error(`sysctlfs: container ${containerId}: no process ${initPid}`);
    if (pidns === info.pidNamespaceOfSync(process.pid, this.o.roots ?? {}))
      throw new Error(`sysctlfs: container ${containerId} shares the host pid namespace`);
    this.containers.set(containerId, { id: containerId, initPid, pidns });
  }

  unregister(containerId: string): void {
    this.containers.delete(containerId);
  }

  async stop(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    this.containers.clear();
    await h?.close();
  }

  private key(file: string): SysctlKey {
    const k = keyByFile(file, this.keys);
    if (!k) throw errno('ENOENT', `no sysctl file ${file}`);
    return k;
  }

  private hostPath(k: SysctlKey): string {
    return join(this.o.procSys ?? '/proc/sys', k.path);
  }

  async read(file: string, callerPid: number): Promise<string> {
    const k = this.key(file);
    const c = await info.findContainer(callerPid, this.containers.values(), this.o.roots ?? {});
    if (c) {
      const v = await this.o.client.valueOf(c.id, k.key);
      if (v !== undefined) return `${v}\n`;
    }
    return readFile(this.hostPath(k), 'utf8');
  }

  async write(file: string, callerPid: number, callerUid: number, data: string): Promise<void> {
    const k = this.key(file);
    const c = await info.findContainer(callerPid, this.containers.values(), this.o.roots ?? {});
    if (!c) {
      if (callerUid !== 0) throw errno('EACCES', `${k.key}: only root writes the host value`);
      await writeFile(this.hostPath(k), data);
      return;
    }
    if (!(await isContainerRoot(callerPid, callerUid, this.o.roots ?? {})))
      throw errno('EACCES', `${k.key}: only the container's root may write`);
    const value = parseValue(k, data);
    const r = await this.o.client.set(c.id, k.key, value);
    if (!r.ok) throw errno(r.code === 'EINTERNAL' ? 'EIO' : r.code, r.reason);
  }
}
