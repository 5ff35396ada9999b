// The FUSE servers of the emulated files: /proc (ProcFs) and the per-container /proc/sys and /sys
// entries (SysctlFs), mounted under the run dir; which containers they serve; and, after a manager
// restart, putting the new servers' files back over the dead ones inside running containers.
// An addition, not a guard: without FUSE containers run with the kernel's files.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ProcFs } from '../procfs/server.ts';
import { SysctlFs, type SysctlFsOptions } from '../sysctl/fs.ts';
import { EMULATED_PROC_FILES } from '../runtime.ts';

/** What it needs of the native side: detach a dead mount, bind files into a container. */
export interface EmulatedFilesNative {
  unmount(target: string, o?: { detach?: boolean }): void;
}
export interface Binder {
  bindInto(pid: number, source: string, target: string): Promise<void>;
  bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void>;
}

export class EmulatedFiles {
  private procfs?: ProcFs;
  private sysctlFs?: SysctlFs;
  private procfsMounted = false;
  private sysctlMounted = false;

  constructor(private readonly runDir: string, private readonly native: EmulatedFilesNative, private readonly binder: Binder, private readonly log: Logger) {}

  /** Mounts the /proc server; logs and carries on without it. */
  async mountProcFs(): Promise<void> {
    try {
      const dir = this.freshDir('procfs');
      this.procfs = new ProcFs();
      await this.procfs.start(dir);
      this.procfsMounted = true;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, '/proc emulation unavailable; containers see the kernel files');
    }
  }

  /** Mounts the sysctl server (only where /proc emulation works); logs and carries on without it. */
  async mountSysctlFs(o: SysctlFsOptions): Promise<void> {
    if (!this.procfsMounted) return;
    try {
      const dir = this.freshDir('sysctlfs');
      this.sysctlFs = new SysctlFs(o);
      await this.sysctlFs.start(dir);
      this.sysctlMounted = true;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'per-container sysctl files unavailable');
    }
  }

  /**
   * Container `id`'s view of the emulated /proc files (its own inodes: see actors/procfs/server.ts);
   * undefined: no emulation on this host, or none for it.
   */
  procfsDir(id: string): string | undefined {
    if (!this.procfsMounted) return undefined;
    try {
      return this.procfs?.viewDir(id);
    } catch (e) {
      this.log.warn({ id, err: (e as Error).message }, 'no /proc emulation for this container');
      return undefined;
    }
  }

  /** Container `id`'s emulated /proc files, for a new proc mount inside it. */
  procFiles(id: string): { dir: string; files: readonly string[] } | undefined {
    const dir = this.procfsDir(id);
    return dir ? { dir, files: EMULATED_PROC_FILES } : undefined;
  }

  /**
   * Container `id`'s emulated /proc/sys and /sys files (actors/sysctl/keys.ts): its view's directory
   * (its own inodes, like procfsDir), FUSE file names and absolute targets.
   */
  sysctlFiles(id: string): { dir: string; files: { file: string; target: string }[] } | undefined {
    if (!this.sysctlMounted || !this.sysctlFs) return undefined;
    let dir: string | undefined;
    try {
      dir = this.sysctlFs.viewDir(id);
    } catch (e) {
      this.log.warn({ id, err: (e as Error).message }, 'no per-container sysctl files for this container');
    }
    return dir ? { dir, files: this.sysctlFs.served().map((k) => ({ file: k.file, target: k.target })) } : undefined;
  }

  /** The emulated files a new proc or sysfs mount made inside container `id` gets (paths relative to it). */
  mountFiles(fstype: string, id: string): { source: string; rel: string }[] {
    const prefix = fstype === 'proc' ? '/proc/' : fstype === 'sysfs' ? '/sys/' : undefined;
    const s = prefix ? this.sysctlFiles(id) : undefined;
    if (!s || !prefix) return [];
    return s.files.filter((f) => f.target.startsWith(prefix)).map((f) => ({ source: join(s.dir, f.file), rel: f.target.slice(prefix.length) }));
  }

  /** Serves the container whose init is `pid` (its pid namespace tells the servers who reads). */
  register(id: string, pid: number): void {
    if (!this.procfsMounted) return;
    this.procfs?.register(id, pid);
    this.sysctlFs?.register(id, pid);
  }

  unregister(id: string): void {
    this.procfs?.unregister(id);
    this.sysctlFs?.unregister(id);
  }

  /** After a restart: the per-container sysctl values of the containers still alive. */
  async restoreValues(live: Iterable<string>): Promise<void> {
    await this.sysctlFs?.restore(live).catch((e) => this.log.warn({ err: (e as Error).message }, 'per-container sysctl values not restored'));
  }

  /**
   * The FUSE servers died with the previous manager, so a restored container's emulated files answer
   * ENOTCONN: put the new servers' files over each dead one (in the container's mount namespace) and
   * register the container with them again. Best effort, like the binds at create.
   */
  async reattach(id: string, pid: number): Promise<void> {
    if (!this.procfsMounted) return;
    try {
      this.register(id, pid);
    } catch (e) {
      this.log.warn({ id, err: (e as Error).message }, 'restored container not registered with /proc emulation');
      return;
    }
    // Every sysctl file died with the old server; probing them from here would look up /proc/sys/net
    // in the manager's netns (another dentry than the container's), so all are put back, in one run.
    const s = this.sysctlFiles(id);
    const sysctl = (s?.files ?? []).map((f) => ({ source: join(s!.dir, f.file), target: f.target }));
    await this.binder.bindIntoMany(pid, sysctl).then(
      () => this.log.info({ id, files: sysctl.length }, 'emulated /proc/sys and /sys files reattached'),
      (e) => this.log.warn({ id, err: (e as Error).message }, 'emulated /proc/sys and /sys files not (all) reattached'));
    const view = this.procfsDir(id);
    const files = view ? EMULATED_PROC_FILES.map((f) => ({ source: join(view, f), target: `/proc/${f}` })) : [];
    for (const f of files) {
      try {
        // open, not stat: a dead FUSE mount may still answer stat from the kernel's attribute cache
        closeSync(openSync(`/proc/${pid}/root${f.target}`, 'r'));
        continue; // alive (or the kernel's own file): leave it
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOTCONN') continue;
      }
      await this.binder.bindInto(pid, f.source, f.target).then(
        () => this.log.info({ id, target: f.target }, 'emulated file reattached'),
        (e) => this.log.warn({ id, target: f.target, err: (e as Error).message }, 'emulated file not reattached'));
    }
  }

  async stop(): Promise<void> {
    await this.procfs?.stop().catch(() => {});
    await this.sysctlFs?.stop().catch(() => {});
  }

  /** A manager that was killed leaves its FUSE mount behind, dead (ENOTCONN even for mkdir's stat): detach it first. */
  private freshDir(name: string): string {
    const dir = join(this.runDir, name);
    try { this.native.unmount(dir, { detach: true }); } catch { /* nothing was mounted */ }
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return dir;
  }
}
