// The only TypeScript way into eci's native code: the eci-helper, eci-fdholder and eci-runc executables
// and the eci_native addon. Each area is a module of its own; this file only gathers them. The surface
// is declared in ./api.ts (NativeApi) and ./mock.ts is checked against the same interface.
import type { NativeApi } from './api.ts';
import * as container from './container.ts';
import * as fdHolder from './fd-holder.ts';
import * as fuse from './fuse.ts';
import * as helpers from './helpers.ts';
import * as launcher from './launcher.ts';
import * as mounts from './mounts.ts';
import * as seccomp from './seccomp.ts';

export type {
  ContainerApi, FdHolderApi, FuseApi, HelpersApi, LauncherApi, MountsApi, NativeApi, SeccompApi,
} from './api.ts';
export { NativeError, parseHelperOutput } from './errors.ts';
export type { HelperExit, NativeErrorInit } from './errors.ts';

export { bindInto, bindIntoMany, setDomainname } from './container.ts';
export { closeFd, connectFdHolder, fdHolderPath, launchFdHolder, setFdHolderNotes } from './fd-holder.ts';
export type { FdHolderAnswer, FdHolderConnection } from './fd-holder.ts';
export { mountProcFs, mountRwFs } from './fuse.ts';
export type { ProcFsMount, ProcFsMountOptions, ProcFsReader, RwFsMountOptions, RwFsWriter } from './fuse.ts';
export { cloexecInherited, helperPath } from './helpers.ts';
export { launcherPath, runLauncher, setkeyPath, startLauncher } from './launcher.ts';
export type { LauncherOptions } from './launcher.ts';
export { bindMount, idmapBinds, idmapBindsAsync, isMountpoint, mountHostView, mountIdAt, mountInfoAt, mountOverlay, mountRootfsBind, mountRootfsOverlay, unmount, unmountAsync, unmountTopAsync } from './mounts.ts';
export type { HostViewOptions, IdmapBind, IdRange, OverlayOptions, RootfsBindOptions, RootfsOverlayOptions, UnmountOptions, UnmountTopResult } from './mounts.ts';
export { chmodAs, listenSeccomp, mountAs, serveSeccompAgent, umountAs } from './seccomp.ts';
export { answeredOf, parseAgentDelivery } from './seccomp-agent.ts';
export type {
  AsNotify, AsOutcome, ChmodAsOptions, MountAsOptions, SeccompAgentConnection, SeccompListener, SeccompNotif,
  SeccompResponse, SeccompStringIssue, UmountAsOptions,
} from './seccomp.ts';

/** The real surface as one object, typed by NativeApi: the compiler checks every area against it. */
export const nativeApi: NativeApi = { ...container, ...fdHolder, ...fuse, ...helpers, ...launcher, ...mounts, ...seccomp };
