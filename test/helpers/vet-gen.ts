// A small seeded generator of vetted-call notifications for property tests (fast-check is not a
// dependency): the same seed gives the same inputs, and a failure names its seed and index.
import { MS } from '../../actors/vetter/syscalls/mount.ts';

/** mulberry32: a tiny, good-enough PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GenNotif {
  pid: number;
  syscall: string;
  args: bigint[];
  strings: Record<string, string | null>;
  stringIssues: Record<string, 'null' | 'unreadable' | 'truncated' | 'binary'>;
}

const FLAG_BITS = [MS.RDONLY, MS.NOSUID, MS.NODEV, MS.NOEXEC, MS.REMOUNT, MS.BIND, MS.MOVE, MS.REC, MS.UNBINDABLE, MS.PRIVATE, MS.SLAVE, MS.SHARED, 0x400n, 0x800n];
const FSTYPES = ['tmpfs', 'tmpfs', 'tmpfs', 'proc', 'sysfs', 'ext4', 'overlay', 'bind', 'none', 'tmpfs ', 'TMPFS', ''];
const PATHS = ['/mnt', '/tmp/x', 'rel/dir', '.', '/proc', '/sys/fs/cgroup', '/m n', '/dev/shm', '/mnt/é', '/a,b', '/x\u0001y', '', '/'];
const DATAS = ['', 'size=1m', 'mode=755', 'size=1m,mode=1777', 'uid=100000', 'gid=100005,mode=700', 'ro', 'nr_inodes=10,uid=5', 'xuid=1', 'size=ü'];

/** One notification: mostly mount/umount2 (the fast path's syscalls), some others. */
export function genNotif(rnd: () => number): GenNotif {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const syscall = pick(['mount', 'mount', 'mount', 'mount', 'umount2', 'umount2', 'open_tree', 'mount_setattr', 'chmod']);
  let flags = 0n;
  for (const b of FLAG_BITS) if (rnd() < 0.12) flags |= b;
  if (rnd() < 0.05) flags |= 0xc0ed0000n; // MS_MGC_VAL, as old callers pass
  if (rnd() < 0.03) flags |= 1n << BigInt(32 + Math.floor(rnd() * 32)); // high register bits
  const stringIssues: GenNotif['stringIssues'] = {};
  const str = (name: string, options: readonly string[], nullable = 0.1): string | null => {
    const r = rnd();
    if (r < nullable) {
      stringIssues[name] = pick(['null', 'null', 'unreadable', 'truncated'] as const);
      return null;
    }
    return pick(options);
  };
  const pid = rnd() < 0.03 ? 0 : 1 + Math.floor(rnd() * 100000);
  const args = [0n, 0n, 0n, 0n, 0n, 0n].map(() => BigInt(Math.floor(rnd() * 2 ** 31)));
  if (syscall === 'mount') {
    args[3] = flags;
    const strings = { source: str('source', ['tmpfs', 'none', '/src', 'x']), target: str('target', PATHS, 0.05), fstype: str('fstype', FSTYPES), data: str('data', DATAS, 0.3) };
    return { pid, syscall, args, strings, stringIssues };
  }
  if (syscall === 'umount2') {
    args[1] = rnd() < 0.5 ? 0n : BigInt(pick([1, 2, 4, 8, 3]));
    return { pid, syscall, args, strings: { target: str('target', PATHS, 0.05) }, stringIssues };
  }
  return { pid, syscall, args, strings: { path: str('path', PATHS) }, stringIssues };
}
