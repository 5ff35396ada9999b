// Event and data types shared by the pure machines. No I/O, no node:*, no bus/ or native/ imports.

/** Host ids `hostID .. hostID+size-1`, mapped to container ids from 0: the one IdRange type (the
 * machines, the allocator, the spec rewrite, the native side and the v1 events all use it). */
export interface IdRange { hostID: number; size: number }

/** A mount eci made: where, and the kernel's mount id, so cleanup removes exactly that mount. */
export interface MountRef { path: string; id: number }

export type ContainerStateName = 'created' | 'mapped' | 'mounted' | 'running' | 'stopped' | 'failed';

export type ContainerEvent =
  | { type: 'range.allocated'; index: number; uid: IdRange; gid: IdRange }
  | { type: 'range.failed'; reason: string }
  /** `viewPending`: the host view on the engine's path is still being mounted (it comes as rootfs.viewed). */
  | { type: 'rootfs.mounted'; path: string; mounts: MountRef[]; viewPending?: boolean }
  | { type: 'rootfs.failed'; reason: string }
  | { type: 'rootfs.viewed'; mount: MountRef }
  | { type: 'rootfs.viewFailed'; reason: string }
  | { type: 'runc.created' }
  | { type: 'runc.failed'; reason: string }
  | { type: 'start' }
  | { type: 'delete' };

export type AllocatorEvent =
  | { type: 'restore'; held: Record<number, string> }
  | { type: 'allocate'; owner: string }
  | { type: 'persisted'; owner: string; index: number }
  | { type: 'persist.conflict'; owner: string; index: number; holder: string }
  | { type: 'persist.failed'; owner: string; index: number; reason: string }
  | { type: 'free'; owner: string };

/** What the allocator answers to an `allocate`. */
export type AllocationResult =
  | { ok: true; owner: string; index: number; uid: IdRange; gid: IdRange }
  | { ok: false; owner: string; code: 'EXHAUSTED' | 'EPERSIST' | 'EBADRANGE'; reason: string };
