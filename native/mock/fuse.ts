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

interface RwMock { files: string[]; writable: string[]; onRead: ProcFsReader; onWrite: RwFsWriter; views: Set<string> }

/** The mount and view of dir/file, dir being a mountpoint or a view's directory in one (else ENOENT). */
function rwOpen(dir: string, file: string): { m: RwMock; view: string } {
  const slash = dir.lastIndexOf('/');
  const view = rwFsMock.mounts.has(dir) ? '' : dir.slice(slash + 1);
  const m = rwFsMock.mounts.get(view ? dir.slice(0, slash) : dir);
  if (!m || !m.files.includes(file) || (view && !m.views.has(view)))
    throw new NativeError({ code: 'ENOENT', errno: errnoOf('ENOENT'), syscall: 'open', message: `ENOENT: ${dir}/${file}` });
  return { m, view };
}

export const rwFsMock = {
  mounts: new Map<string, RwMock>(),
  /** What host pid `pid` reads from dir/file, dir being a mountpoint or a view's directory in one. */
  async read(dir: string, file: string, pid: number): Promise<string> {
    const { m, view } = rwOpen(dir, file);
    return m.onRead(file, pid, view);
  },
  /** Rejects with a NativeError (syscall 'write') carrying the errno the kernel would return. */
  async write(dir: string, file: string, pid: number, uid: number, data: string): Promise<void> {
    const { m, view } = rwOpen(dir, file);
    if (!m.writable.includes(file))
      throw new NativeError({ code: 'EACCES', errno: errnoOf('EACCES'), syscall: 'open', message: `EACCES: ${dir}/${file}` });
    try {
      await m.onWrite(file, pid, uid, data, view);
    } catch (e) {
      const c = (e as { code?: string }).code;
      const code = c && errnoOf(c) > 0 ? c : 'EIO';
      throw new NativeError({ code, errno: errnoOf(code), syscall: 'write', message: `${code}: ${dir}/${file}`, cause: e });
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
  const views = new Set<string>();
  rwFsMock.mounts.set(o.mountpoint, { files: [...o.files], writable: [...o.writable], onRead, onWrite, views });
  return {
    close() { rwFsMock.mounts.delete(o.mountpoint); return Promise.resolve(); },
    addView(name) {
      if (!name || name === '.' || name === '..' || name.includes('/') || o.files.includes(name)) throw usageError(`view name '${name}' is not a plain name apart from the files`);
      views.add(name);
    },
    removeView(name) {
      views.delete(name);
    },
  };
}
