// SysctlFs: per-container views of the emulated kernel settings (actors/sysctl/keys.ts), as writable
// files of one FUSE directory (native mountRwFs), e.g. `sys-fs-file-max`, meant to be bound into
// containers over /proc/sys/... and /sys/.... Each container has a view of its own (`<mount>/ctr-<id>/`,
// see viewDir), the same files under inodes of their own: that is what its files are bound from, and
// it is that container's whoever reads or writes it (splice/sendfile read through the page cache of the
// inode despite direct_io, so an inode shared by several containers would hand one's text to another).
// At the top level a caller is attributed, as by ProcFs, to the container whose init shares its pid
// namespace:
//   read  -> the value its container set (as it wrote it), else the host's current value;
//   write -> from the container's root only (else EACCES); a value the kernel would refuse is EINVAL;
//            host-max entries also go to the reconciler (`eci.v1.sysctl.set` on the bus: the host
//            follows up to a ceiling), per-container ones only to this server's cache (the host is
//            never written).
// Callers from no container read and write the host file itself.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountRwFs, type ProcFsMount } from '../../native/index.ts';
import * as info from '../procfs/container-info.ts';
import { ContainerViews } from '../procfs/views.ts';
import { sysctlSubjects } from '../../bus/subjects.ts';
import { sysctlLocalKeys } from '../../bus/keys.ts';
import { ENTRIES, keyByFile, parseReconciled, productUuid, validateText, type SysctlKey } from './keys.ts';
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

/**
 * Where per-container values survive a manager restart: KV records `local.<id>` -> {values: {key: text}}
 * in the reconciler's bucket (the part of a @nats-io/kv KV used here).
 */
export interface SysctlValueKv {
  get(k: string): Promise<{ operation: string; json<T>(): T } | null>;
  put(k: string, v: string): Promise<unknown>;
  delete(k: string): Promise<unknown>;
  keys(filter?: string): Promise<AsyncIterable<string>>;
}

const localKey = sysctlLocalKeys.key;

export interface SysctlFsOptions {
  client: SysctlClient;
  /** Keeps per-container values across a manager restart (omit: memory only). */
  kv?: SysctlValueKv;
  /** Entries served (default ENTRIES; the reconciled ones must be the reconciler's). */
  keys?: readonly SysctlKey[];
  roots?: info.Roots;
  /** Host /proc/sys and /sys (tests). */
  procSys?: string;
  sys?: string;
  mount?: typeof mountRwFs;
}

/**
 * The entries a manager serves: the reconciler's host-max keys (those present on this host) and the
 * per-container entries whose host file exists (e.g. kernel.sysrq and yama are absent on some kernels;
 * a bind target must exist in the container).
 */
export function servedEntries(reconciled: readonly SysctlKey[], keys: readonly SysctlKey[] = ENTRIES, exists: (path: string) => boolean = existsSync): SysctlKey[] {
  return keys.filter((k) => (k.scope === 'host-max' ? reconciled.some((r) => r.key === k.key) : exists(k.target)));
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
  /** What each container wrote (per-container and host-max entries): container id -> key -> file text. */
  private readonly values = new Map<string, Map<string, string>>();
  private handle: ProcFsMount | undefined;
  private mountpoint: string | undefined;
  /** Container id of each view name added. */
  private readonly views = new ContainerViews(() => ({ dir: this.mountpoint, handle: this.handle }));

  constructor(private o: SysctlFsOptions) {
    this.keys = o.keys ?? ENTRIES;
  }

  /** File names served. */
  files(): string[] {
    return this.keys.map((k) => k.file);
  }

  /** Entries served. */
  served(): readonly SysctlKey[] {
    return this.keys;
  }

  async start(mountpoint: string): Promise<void> {
    if (this.handle) throw new Error('SysctlFs is already mounted');
    const files = this.files();
    const writable = this.keys.filter((k) => k.scope !== 'readonly' && k.scope !== 'uuid').map((k) => k.file);
    this.handle = (this.o.mount ?? mountRwFs)({ mountpoint, files, writable },
      (file, pid, view) => this.read(file, pid, view), (file, pid, uid, data, view) => this.write(file, pid, uid, data, view));
    this.mountpoint = mountpoint;
  }

  /**
   * The directory of container `containerId`'s view, added if needed (at create, before its init
   * runs: a view answers for its container by id, registered or not). Undefined when not mounted.
   * Throws NativeError when the id makes no plain directory name.
   */
  viewDir(containerId: string): string | undefined {
    return this.views.dir(containerId);
  }


  register(containerId: string, initPid: number): void {
    const pidns = info.pidNamespaceOfSync(initPid, this.o.roots ?? {});
    if (pidns === undefined) throw new Error(`sysctlfs: container ${containerId}: no process ${initPid}`);
    if (pidns === info.pidNamespaceOfSync(process.pid, this.o.roots ?? {}))
      throw new Error(`sysctlfs: container ${containerId} shares the host pid namespace`);
    this.containers.set(containerId, { id: containerId, initPid, pidns });
    this.viewDir(containerId); // after a manager restart the new mount has no view yet
  }

  unregister(containerId: string): void {
    this.containers.delete(containerId);
    this.views.remove(containerId);
    const had = this.values.delete(containerId);
    if (had) void this.o.kv?.delete(localKey(containerId)).catch(() => { /* an orphan record goes at the next start */ });
  }

  /**
   * After a manager restart: takes back the per-container values of the containers in `live` from
   * KV and deletes the records of the others (gone while no manager ran).
   */
  async restore(live: Iterable<string>): Promise<void> {
    const kv = this.o.kv;
    if (!kv) return;
    const keep = new Set(live);
    const known = new Set(this.keys.filter((k) => k.scope === 'container' || k.scope === 'host-max').map((k) => k.key));
    for await (const name of await kv.keys(sysctlLocalKeys.all)) {
      const id = sysctlLocalKeys.rest(name)!;
      if (!keep.has(id)) {
        await kv.delete(name);
        continue;
      }
      const e = await kv.get(name);
      if (!e || e.operation !== 'PUT') continue;
      const vals = e.json<{ values?: Record<string, string> }>().values ?? {};
      const m = new Map(Object.entries(vals).filter(([k, v]) => known.has(k) && typeof v === 'string'));
      if (m.size) this.values.set(id, m);
    }
  }

  async stop(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    this.containers.clear();
    this.views.clear();
    this.values.clear();
    await h?.close();
  }

  private key(file: string): SysctlKey {
    const k = keyByFile(file, this.keys);
    if (!k) throw errno('ENOENT', `no sysctl file ${file}`);
    return k;
  }

  hostPath(k: SysctlKey): string {
    return k.target.startsWith('/sys/') ? join(this.o.sys ?? '/sys', k.path) : join(this.o.procSys ?? '/proc/sys', k.path);
  }

  /**
   * The container a call is for: a view's, whoever calls (never the host's: a removed view fails), or
   * at the top level the caller's (undefined: the host).
   */
  private async target(callerPid: number, view: string): Promise<{ id: string } | undefined> {
    if (!view) return info.findContainer(callerPid, this.containers.values(), this.o.roots ?? {});
    const id = this.views.containerOf(view);
    if (id === undefined) throw errno('ENOENT', `sysctlfs: no view ${view}`);
    return { id };
  }

  /** What host pid `callerPid` reads from `file` at the top level (`view` '') or in a view. */
  async read(file: string, callerPid: number, view = ''): Promise<string> {
    const k = this.key(file);
    if (k.scope === 'readonly') return readFile(this.hostPath(k), 'utf8');
    const c = await this.target(callerPid, view);
    if (k.scope === 'uuid') {
      const host = await readFile(this.hostPath(k), 'utf8').catch(() => undefined);
      return c ? productUuid(host, c.id) : host ?? '';
    }
    if (c) {
      const text = this.values.get(c.id)?.get(k.key);
      if (text !== undefined) return text;
    }
    if (c && k.scope === 'host-max') {
      const v = await this.o.client.valueOf(c.id, k.key); // a value set before texts were kept
      if (v !== undefined) return `${v}\n`;
    }
    return readFile(this.hostPath(k), 'utf8');
  }

  /** A write by host pid `callerPid` (host uid `callerUid`) at the top level (`view` '') or in a view. */
  async write(file: string, callerPid: number, callerUid: number, data: string, view = ''): Promise<void> {
    const k = this.key(file);
    if (k.scope === 'readonly' || k.scope === 'uuid') throw errno('EACCES', `${k.key} is read-only`);
    const c = await this.target(callerPid, view);
    if (!c) {
      if (callerUid !== 0) throw errno('EACCES', `${k.key}: only root writes the host value`);
      await writeFile(this.hostPath(k), data);
      return;
    }
    if (!(await isContainerRoot(callerPid, callerUid, this.o.roots ?? {})))
      throw errno('EACCES', `${k.key}: only the container's root may write`);
    if (k.scope === 'container') return this.keep(c.id, k.key, validateText(k, data));
    const { text, value } = parseReconciled(k, data);
    const r = await this.o.client.set(c.id, k.key, value);
    if (!r.ok) throw errno(r.code === 'EINTERNAL' ? 'EIO' : r.code, r.reason);
    await this.keep(c.id, k.key, text);
  }

  /** Remembers what container `id` wrote, for its reads (and across a manager restart). */
  private async keep(id: string, key: string, text: string): Promise<void> {
    if (!this.live(id)) return; // unregistered meanwhile: nothing to keep
    const m = new Map(this.values.get(id) ?? []).set(key, text);
    // Persisted before the write succeeds (a failure is EIO): a manager restart keeps what the
    // container saw succeed.
    await this.o.kv?.put(localKey(id), JSON.stringify({ values: Object.fromEntries(m) }));
    if (this.live(id)) this.values.set(id, m);
  }

  /** Registered, or its view is there (a write through it may come before its init registers). */
  private live(id: string): boolean {
    return this.containers.has(id) || this.views.has(id);
  }
}
