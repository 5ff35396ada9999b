// The native surface as one interface: what native/index.ts exports (the real calls) and what
// native/mock.ts exports (the stand-in for unit and model tests). Both are checked against it at
// compile time, so a mock that lacks or mistypes a call fails `npm run typecheck`.
import type { FdHolderConnection } from './fd-holder.ts';
import type { ProcFsMount, ProcFsMountOptions, ProcFsReader, RwFsMountOptions, RwFsWriter } from './fuse.ts';
import type { LauncherOptions } from './launcher.ts';
import type {
  HostViewOptions, IdmapBind, IdRange, OverlayOptions, RootfsBindOptions, RootfsOverlayOptions, UnmountOptions, UnmountTopResult,
} from './mounts.ts';
import type {
  AsOutcome, ChmodAsOptions, MountAsOptions, SeccompAgentConnection, SeccompListener, UmountAsOptions,
} from './seccomp-agent.ts';

/** Mounts: the idmapped rootfs, idmapped binds, plain mounts in this process (mounts.ts). */
export interface MountsApi {
  mountRootfsOverlay(o: RootfsOverlayOptions): Promise<void>;
  mountRootfsBind(o: RootfsBindOptions): Promise<void>;
  mountHostView(o: HostViewOptions): Promise<void>;
  unmount(target: string, o?: UnmountOptions): void;
  /** unmount on libuv's thread pool. */
  unmountAsync(target: string, o?: UnmountOptions): Promise<void>;
  /** The mounts still on top at their paths unmounted in order, in one thread-pool job. */
  unmountTopAsync(mounts: readonly { path: string; id: number }[], o?: UnmountOptions): Promise<UnmountTopResult[]>;
  isMountpoint(path: string): boolean;
  /** The id of the top mount whose root is exactly `path` (undefined: none; null: ask mountinfo). */
  mountIdAt(path: string): number | null | undefined;
  mountInfoAt(path: string): string | null;
  bindMount(source: string, target: string): void;
  idmapBinds(binds: IdmapBind[], uid: IdRange, gid: IdRange): void;
  /** idmapBinds on libuv's thread pool. */
  idmapBindsAsync(binds: IdmapBind[], uid: IdRange, gid: IdRange): Promise<void>;
  mountOverlay(o: OverlayOptions): void;
}

/** Inside a running container (container.ts). */
export interface ContainerApi {
  bindInto(pid: number, source: string, target: string): Promise<void>;
  bindIntoMany(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void>;
  setDomainname(pid: number, name: string): Promise<void>;
}

/** eci-helper and what the manager's children inherit (helpers.ts). */
export interface HelpersApi {
  helperPath(): string;
  cloexecInherited(): void;
}

/** The seccomp agent and the vetted calls (seccomp.ts). */
export interface SeccompApi {
  serveSeccompAgent(path: string, onConnection: (c: SeccompAgentConnection) => void): { close(): Promise<void> };
  listenSeccomp(fd: number, o?: { holderTag?: string; fastPath?: boolean }): SeccompListener;
  mountAs(o: MountAsOptions): Promise<AsOutcome>;
  umountAs(o: UmountAsOptions): Promise<AsOutcome>;
  chmodAs(o: ChmodAsOptions): Promise<void>;
}

/** FUSE views (fuse.ts). */
export interface FuseApi {
  mountProcFs(o: ProcFsMountOptions, onRead: ProcFsReader): ProcFsMount;
  mountRwFs(o: RwFsMountOptions, onRead: ProcFsReader, onWrite: RwFsWriter): ProcFsMount;
}

/** The fd-holder (fd-holder.ts). */
export interface FdHolderApi {
  fdHolderPath(): string;
  launchFdHolder(socket: string, pidFile: string): void;
  connectFdHolder(path: string): FdHolderConnection;
  closeFd(fd: number): void;
  setFdHolderNotes(conn: FdHolderConnection | undefined): void;
}

/** The runtime launcher, eci-runc (launcher.ts). */
export interface LauncherApi {
  launcherPath(): string;
  /** Docker's libnetwork-setkey hook, eci-setkey (actors/spec/docker-setkey.ts). */
  setkeyPath(): string;
  runLauncher(args: string[], o: LauncherOptions): Promise<void>;
  startLauncher(args: string[], o: LauncherOptions): void;
}

/** Everything that reaches C. */
export interface NativeApi extends MountsApi, ContainerApi, HelpersApi, SeccompApi, FuseApi, FdHolderApi, LauncherApi {}
