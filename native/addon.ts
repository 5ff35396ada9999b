// The eci_native addon (native/src/*.cc) as TypeScript sees it: one interface for the whole loaded
// .node module, and its loader. Only the native/*.ts area modules use it; everyone else goes through
// native/index.ts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeError, errnoOf } from './errors.ts';
import type { FastTableSpec, RawAgentDelivery, RawWatchEvent, SeccompNotif, SeccompResponse } from './seccomp-agent.ts';

/** The fast path's table as the watcher takes it: the rules and `sock`, its end of the performer's fd 5 (the addon owns it from then on). */
export type NativeFastTable = FastTableSpec & { sock?: number; gen?: number };

/** One bind for idmapBinds: `dev`/`ino` are those of the inode the policy checked. */
export interface IdmapBind {
  source: string;
  target: string;
  dev: bigint;
  ino: bigint;
  nosuid?: boolean;
  nodev?: boolean;
  rdonly?: boolean;
}

/** An fd-holder's answer: the reply line; for TAKE, the fds (owned by the caller) and the noted ids. */
export interface FdHolderAnswer {
  reply: string;
  taken: { tag: string; fd: number }[];
  pending: { tag: string; id: bigint }[];
}

/** A FUSE read request handed to JavaScript (src/procfs.cc). */
export type AddonReadCallback = (id: number, file: string, pid: number, view?: string) => void;

/** src/seccomp.cc, exported as `seccomp`. */
export interface SeccompAddon {
  listen(path: string, cb: (d: RawAgentDelivery) => void): { close(): void };
  watch(fd: number, cb: (e: RawWatchEvent) => void, holderTag?: string): { close(): void; fast(t: NativeFastTable | null): boolean; charge(): void };
  /** Tests only: the watcher's fast-path matcher on one notification as JS sees it. */
  fastMatch(t: Omit<NativeFastTable, 'sock'>, n: Pick<SeccompNotif, 'pid' | 'syscall' | 'args' | 'strings' | 'stringIssues'> & { id: bigint }): { rule: string; argv: string[] } | null;
  socketPair(): [number, number];
  respond(fd: number, id: bigint, r: SeccompResponse): void;
  idValid(fd: number, id: bigint): boolean;
  closeFd(fd: number): void;
  holderConnect(path: string): number;
  holderCall(fd: number, request: string, passFd?: number): FdHolderAnswer;
  /** The same round trip on libuv's thread pool (passFd is duplicated at the call); one at a time per fd. */
  holderCallAsync(fd: number, request: string, passFd?: number): Promise<FdHolderAnswer>;
  holderNotes(fd: number): void;
  dupFd(fd: number): number;
  constants: { AUDIT_ARCH_X86_64: number; AUDIT_ARCH_I386: number; SECCOMP_USER_NOTIF_FLAG_CONTINUE: number };
}

/** src/procfs.cc, exported as `procfs`. */
export interface ProcFsAddon {
  mount(mountpoint: string, files: string[], onRead: AddonReadCallback, cacheMs?: number[]): {
    reply(id: number, text: string | null, errno: number): void;
    close(): void;
    cache(pidns: number, on: boolean): void;
    addView(name: string): void;
    removeView(name: string): void;
  };
  mountRw(mountpoint: string, files: string[], writable: string[], onRead: AddonReadCallback,
    onWrite: (id: number, file: string, pid: number, uid: number, data: string, view?: string) => void): {
    reply(id: number, text: string | null, errno: number): void;
    replyWrite(id: number, errno: number): void;
    close(): void;
    addView(name: string): void;
    removeView(name: string): void;
  };
}

/** The loaded eci_native.node (src/addon.cc). Failures throw SystemError-shaped errors. */
export interface Addon {
  cloexecInherited(): void;
  umount2(path: string, flags: number): void;
  /** umount2 on libuv's thread pool (the event loop does not wait for it). */
  umount2Async(path: string, flags: number): Promise<void>;
  /** In order, each mount still the top one at its path unmounted (one thread-pool job): 0 unmounted, 1 absent, 2 undecided, -errno. */
  umountTopAsync(mounts: { path: string; id: number }[], flags: number): Promise<number[]>;
  isMountpoint(path: string): boolean;
  mountIdAt(path: string): number | null | undefined;
  mountInfoAt(path: string): string | null;
  bindMount(source: string, target: string): void;
  /** mount(2) of a plain overlay: lowerdir (colon-joined), upperdir and workdir on target. */
  mountOverlay(lowerdir: string, upperdir: string, workdir: string, target: string): void;
  idmapBinds(binds: IdmapBind[], uid: number, gid: number, size: number): void;
  idmapBindsAsync(binds: IdmapBind[], uid: number, gid: number, size: number): Promise<void>;
  constants: { MNT_FORCE: number; MNT_DETACH: number; MNT_EXPIRE: number; UMOUNT_NOFOLLOW: number };
  seccomp: SeccompAddon;
  procfs: ProcFsAddon;
}

// Typed by hand: under `deno check` with this repo's tsconfig (lib ES2022), ImportMeta has no `url`.
const moduleURL = (import.meta as { url: string }).url;

/** A file under native/, whether this module runs from native/ or from a compiled dist/native/. */
export function nativeFile(rel: string): string {
  const here = fileURLToPath(new URL(rel, moduleURL));
  if (existsSync(here)) return here;
  const fromDist = fileURLToPath(new URL(`../../native/${rel}`, moduleURL));
  return existsSync(fromDist) ? fromDist : here;
}

let addon: Addon | undefined;

/** The addon, loaded on first use; throws NativeError (ENOENT: not built, ENOEXEC: cannot load). */
export function loadAddon(): Addon {
  if (addon) return addon;
  const file = nativeFile('./build/Release/eci_native.node');
  try {
    addon = createRequire(moduleURL)(file) as Addon; // the one place the module gets its type
  } catch (cause) {
    const missing = !existsSync(file);
    throw new NativeError({
      code: missing ? 'ENOENT' : 'ENOEXEC',
      errno: errnoOf(missing ? 'ENOENT' : 'ENOEXEC'),
      syscall: 'dlopen',
      message: missing ? `eci native addon is not built (npm run build): ${file}` : `cannot load ${file}`,
      path: file,
      cause,
    });
  }
  return addon;
}

/** Runs one addon call, turning what it throws into a NativeError. */
export function callAddon<T>(call: (a: Addon) => T): T {
  const a = loadAddon();
  try {
    return call(a);
  } catch (err) {
    throw NativeError.from(err);
  }
}
