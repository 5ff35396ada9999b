// The new mount API (open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr): judged on
// register arguments (or a struct read once), so each is either refused or CONTINUEd, never performed:
// CONTINUE only where every variant of the call is safe whichever object a racing thread names.
import { arg, CONTINUE, EPERM, type ArgRead, type SyscallEntry, type VetRequest } from '../types.ts';

export const MOUNT_ATTR = { RDONLY: 0x1n, NOSUID: 0x2n, NODEV: 0x4n, NOEXEC: 0x8n, IDMAP: 0x100000n, NOSYMFOLLOW: 0x200000n } as const;
const OPEN_TREE_CLONE = 1n;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4n;
const FSCONFIG_CMD_RECONFIGURE = 7n;

/** Flags that loosen a mount; clearing any of them through mount_setattr is refused. */
const PROTECTIVE_ATTRS = MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NOSYMFOLLOW;

function judgeMountSetattr(r: VetRequest) {
  const attr = r.mountAttr;
  if (!attr) return EPERM('mount_setattr: the mount_attr could not be read from the caller');
  if (attr.attrClr & PROTECTIVE_ATTRS) return EPERM('mount_setattr may not clear read-only, nosuid, nodev, noexec or nosymfollow');
  if (attr.attrSet & MOUNT_ATTR.IDMAP) return EPERM('mount_setattr may not idmap mounts');
  // Only tightening flags or propagation remains: safe whichever mount a racing thread names.
  return CONTINUE('only tightens mount attributes');
}

const path = (i: number): ArgRead => ({ name: 'path', arg: i, how: 'string' });
// The numbers from 428 on are the same on every architecture (after the syscall table unification).
const common = (n: number) => ({ x86_64: n, i386: n });

export const newMountApiSyscalls: SyscallEntry<never>[] = [
  {
    name: 'open_tree', nr: common(428), notify: 'always', reads: [path(1)],
    // A clone keeps the source's flags (read-only stays read-only); an uncloned mount fd could
    // move an eci-managed mount, so it is refused.
    judge: (r) => (arg(r, 2) & OPEN_TREE_CLONE) ? CONTINUE('detached clone keeps its flags') : EPERM('open_tree without OPEN_TREE_CLONE is not allowed'),
  },
  {
    name: 'move_mount', nr: common(429), notify: 'always',
    reads: [{ name: 'from_path', arg: 1, how: 'string' }, { name: 'to_path', arg: 3, how: 'string' }],
    judge: (r) => !(arg(r, 4) & MOVE_MOUNT_F_EMPTY_PATH) || (r.strings.from_path ?? '') !== ''
      ? EPERM('move_mount of a mount named by path is not allowed (use mount --move)')
      : CONTINUE('attaches a mount held by fd; its flags travel with it'),
  },
  {
    name: 'fsopen', nr: common(430), notify: 'always', reads: [{ name: 'fsname', arg: 0, how: 'string' }],
    judge: () => CONTINUE('new filesystem, gated by the kernel for the user namespace'),
  },
  {
    name: 'fsconfig', nr: common(431), notify: 'always',
    reads: [{ name: 'key', arg: 2, how: 'fsconfig-key' }, { name: 'value', arg: 3, how: 'fsconfig-value' }],
    judge: (r) => arg(r, 1) === FSCONFIG_CMD_RECONFIGURE ? EPERM('fsconfig reconfigure of an existing superblock is not allowed') : CONTINUE('configures a new filesystem context'),
  },
  {
    name: 'fsmount', nr: common(432), notify: 'always', reads: [],
    judge: () => CONTINUE('new filesystem, gated by the kernel for the user namespace'),
  },
  {
    name: 'fspick', nr: common(433), notify: 'always', reads: [path(1)],
    judge: () => EPERM('fspick (reconfiguring an existing superblock) is not allowed'),
  },
  {
    name: 'mount_setattr', nr: common(442), notify: 'always',
    reads: [path(1), { name: 'mountAttr', arg: 3, how: 'mount-attr' }],
    judge: judgeMountSetattr,
  },
];
