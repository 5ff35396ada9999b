// Mock of fuse.ts: mountProcFs mounts are kept in procFsMock.mounts and mountRwFs ones in
// rwFsMock.mounts; their read()/write() play a caller.
import { NativeError, errnoOf, usageError } from '../errors.ts';
import type { ProcFsMount, ProcFsMountOptions, ProcFsReader, RwFsMountOptions, RwFsWriter } from '../fuse.ts';

export const procFsMock = {
  /** Live mounts by mountpoint. */
  mounts: new Map<string, { files: string[]; onRead: ProcFsReader; views: Set<string> }>(),
  /** When set, the next mountProcFs throws a NativeError with this code (then it is cleared). */
  failNextMount: undefined as string | undefined,
  /**
   * What a process with host pid `pid` would read from dir/file, dir being a mountpoint or a view's
   * directory in one (ENOENT when absent).
   */
  async read(dir: string, file: string, pid: number): Promise<string> {
    const slash = dir.lastIndexOf('/');
    const view = procFsMock.mounts.has(dir) ? '' : dir.slice(slash + 1);
    const m = procFsMock.mounts.get(view ? dir.slice(0, slash) : dir);
    if (!m || !m.files.includes(file) || (view && !m.views.has(view)))
      throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${dir}/${file}` });
    try {
      return await m.onRead(file, pid, view);
    } catch (cause) {
      throw new NativeError({ code: 'EIO', errno: errnoOf('EIO'), syscall: 'read', message: `EIO: ${dir}/${file}`, cause });
    }
  },
  reset(): void {
    procFsMock.mounts.clear();
    procFsMock.failNextMount = undefined;
  },
};

export function mountProcFs(o: ProcFsMountOptions, onRead: ProcFsReader): ProcFsMount {
  if (!o.mountpoint.startsWith('/')) throw usageError(`procfs mountpoint must be an absolute path, got ${o.mountpoint}`);
  if (procFsMock.failNextMount) {
    const code = procFsMock.failNextMount;
    procFsMock.failNextMount = undefined;
    throw new NativeError({ code, errno: errnoOf(code), syscall: 'mount', message: `${code}: injected failure of mountProcFs`, path: o.mountpoint });
  }
  if (procFsMock.mounts.has(o.mountpoint))
    throw new NativeError({ code: 'EBUSY', errno: errnoOf('EBUSY'), syscall: 'mount', message: `EBUSY: ${o.mountpoint}`, path: o.mountpoint });
  const views = new Set<string>();
  procFsMock.mounts.set(o.mountpoint, { files: [...o.files], onRead, views });
  return {
    close() {
      procFsMock.mounts.delete(o.mountpoint);
      return Promise.resolve();
    },
    addView(name) {
      if (!name || name === '.' || name === '..' || name.includes('/') || o.files.includes(name)) throw usageError(`view name '${name}' is not a plain name apart from the files`);
      views.add(name);
    },
    removeView(name) {
      views.delete(name);
    },
  };
}

export const rwFsMock = {
  mounts: new Map<string, { files: string[]; writable: string[]; onRead: ProcFsReader; onWrite: RwFsWriter }>(),
  async read(mountpoint: string, file: string, pid: number): Promise<string> {
    const m = rwFsMock.mounts.get(mountpoint);
    if (!m || !m.files.includes(file))
      throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${mountpoint}/${file}` });
    return m.onRead(file, pid, '');
  },
  /** Rejects with a NativeError (syscall 'write') carrying the errno the kernel would return. */
  async write(mountpoint: string, file: string, pid: number, uid: number, data: string): Promise<void> {
    const m = rwFsMock.mounts.get(mountpoint);
    if (!m || !m.files.includes(file))
      throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${mountpoint}/${file}` });
    if (!m.writable.includes(file))
      throw new NativeError({ code: 'EACCES', errno: errnoOf('EACCES'), syscall: 'open', message: `EACCES: ${mountpoint}/${file}` });
    try {
      await m.onWrite(file, pid, uid, data);
    } catch (e) {
      const c = (e as { code?: string }).code;
      const code = c && errnoOf(c) > 0 ? c : 'EIO';
      throw new NativeError({ code, errno: errnoOf(code), syscall: 'write', message: `${code}: ${mountpoint}/${file}`, cause: e });
    }
  },
  reset(): void {
    rwFsMock.mounts.clear();
  },
};

export function mountRwFs(o: RwFsMountOptions, onRead: ProcFsReader, onWrite: RwFsWriter): ProcFsMount {
  if (!o.mountpoint.startsWith('/')) throw usageError(`procfs mountpoint must be an absolute path, got ${o.mountpoint}`);
  if (rwFsMock.mounts.has(o.mountpoint))
    throw new NativeError({ code: 'EBUSY', errno: errnoOf('EBUSY'), syscall: 'mount', message: `EBUSY: ${o.mountpoint}`, path: o.mountpoint });
  rwFsMock.mounts.set(o.mountpoint, { files: [...o.files], writable: [...o.writable], onRead, onWrite });
  return { close() { rwFsMock.mounts.delete(o.mountpoint); return Promise.resolve(); } };
}
