// Per-container view directories of a FUSE server (ProcFs and SysctlFs): each container's files live
// under `ctr-<id>/` with inodes of their own, answered for that container whoever reads, because
// splice and sendfile read through the inode's page cache whatever direct_io says.
import { join } from 'node:path';

/** The directory name of container `id`'s view in the mount (never one of the files' names). */
export const viewName = (id: string): string => `ctr-${id}`;

/** What a view needs of the mount: its directory and the native handle (without addView: no views). */
export interface ViewMount {
  dir?: string;
  handle?: { addView?(name: string): void; removeView?(name: string): void };
}

export class ContainerViews {
  private readonly byName = new Map<string, string>();

  constructor(private readonly mount: () => ViewMount) {}

  /**
   * The directory of container `id`'s view, added if needed. Undefined when not mounted. Throws
   * NativeError when the id makes no plain directory name.
   */
  dir(id: string): string | undefined {
    const { dir, handle } = this.mount();
    if (!handle?.addView || !dir) return undefined;
    const name = viewName(id);
    handle.addView(name);
    this.byName.set(name, id);
    return join(dir, name);
  }

  remove(id: string): void {
    this.mount().handle?.removeView?.(viewName(id));
    this.byName.delete(viewName(id));
  }

  /** The container whose view `name` is. */
  containerOf(name: string): string | undefined {
    return this.byName.get(name);
  }

  has(id: string): boolean {
    return this.byName.get(viewName(id)) === id;
  }

  clear(): void {
    this.byName.clear();
  }
}
