// In-memory stand-in for native/index.ts, for unit and model tests: same exports (checked against
// NativeApi at compile time), no root, no kernel. Swap it in with
// vi.mock('<path>/native/index.ts', () => import('<path>/native/mock.ts')).
// Each area's mock is in native/mock/, with the handle tests drive it by: nativeMock (mounts),
// seccompMock and chmodAsMock (seccomp agent), procFsMock and rwFsMock (FUSE).
import type { NativeApi } from './api.ts';
import * as fuse from './mock/fuse.ts';
import * as mounts from './mock/mounts.ts';
import * as processes from './mock/processes.ts';
import * as seccomp from './mock/seccomp.ts';

export type {
  ContainerApi, FdHolderApi, FuseApi, HelpersApi, LauncherApi, MountsApi, NativeApi, SeccompApi,
} from './api.ts';
export { NativeError, parseHelperOutput } from './errors.ts';
export type { HelperExit, NativeErrorInit } from './errors.ts';
export type { MockFailure } from './mock/common.ts';

export { mountProcFs, mountRwFs, procFsMock, rwFsMock } from './mock/fuse.ts';
export type { ProcFsMount, ProcFsMountOptions, ProcFsReader, RwFsMountOptions, RwFsWriter } from './fuse.ts';
export {
  bindInto, bindIntoMany, bindMount, idmapBinds, idmapBindsAsync, isMountpoint, mountHostView, mountIdAt, mountInfoAt, mountOverlay, mountRootfsBind, mountRootfsOverlay,
  nativeMock, setDomainname, unmount, unmountAsync, unmountTopAsync,
} from './mock/mounts.ts';
export type { MockMount, NativeCall, NativeFn } from './mock/mounts.ts';
export type { HostViewOptions, IdmapBind, IdRange, OverlayOptions, RootfsBindOptions, RootfsOverlayOptions, UnmountOptions } from './mounts.ts';
export {
  closeFd, cloexecInherited, connectFdHolder, fdHolderPath, helperPath, launchFdHolder, launcherPath, runLauncher,
  setFdHolderNotes, setkeyPath, startLauncher,
} from './mock/processes.ts';
export type { FdHolderAnswer, FdHolderConnection } from './fd-holder.ts';
export type { LauncherOptions } from './launcher.ts';
export { chmodAs, chmodAsMock, listenSeccomp, mountAs, seccompMock, serveSeccompAgent, umountAs } from './mock/seccomp.ts';
export { answeredOf, parseAgentDelivery } from './seccomp-agent.ts';
export type {
  AsNotify, AsOutcome, ChmodAsOptions, MountAsOptions, SeccompAgentConnection, SeccompListener, SeccompNotif,
  SeccompResponse, SeccompStringIssue, UmountAsOptions,
} from './seccomp-agent.ts';

/** The mock surface as one object, typed by NativeApi: a missing or mistyped call fails the type check. */
export const nativeApi: NativeApi = { ...fuse, ...mounts, ...processes, ...seccomp };
