// Generated from actors/vetter/registry.ts by `npm run gen:syscalls`: do not edit (test/unit/vetter-registry.test.ts
// checks it is up to date). The vetted syscalls: their names, numbers and the pointer arguments read.
#pragma once

#include <cstdint>

namespace eci_seccomp {

enum Sc { SC_UNKNOWN, SC_MOUNT, SC_UMOUNT2, SC_OPEN_TREE, SC_MOVE_MOUNT, SC_FSOPEN, SC_FSCONFIG, SC_FSMOUNT, SC_FSPICK, SC_MOUNT_SETATTR, SC_CHMOD, SC_FCHMOD, SC_FCHMODAT, SC_FCHMODAT2 };

const char* const kScNames[] = {"unknown", "mount", "umount2", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "chmod", "fchmod", "fchmodat", "fchmodat2"};

// x86_64 numbers (x32 shares them, with the X32 bit cleared by the caller).
inline Sc ScOfX86_64(uint32_t nr) {
  switch (nr) {
    case 90: return SC_CHMOD;
    case 91: return SC_FCHMOD;
    case 165: return SC_MOUNT;
    case 166: return SC_UMOUNT2;
    case 268: return SC_FCHMODAT;
    case 428: return SC_OPEN_TREE;
    case 429: return SC_MOVE_MOUNT;
    case 430: return SC_FSOPEN;
    case 431: return SC_FSCONFIG;
    case 432: return SC_FSMOUNT;
    case 433: return SC_FSPICK;
    case 442: return SC_MOUNT_SETATTR;
    case 452: return SC_FCHMODAT2;
    default: return SC_UNKNOWN;
  }
}

inline Sc ScOfI386(uint32_t nr) {
  switch (nr) {
    case 15: return SC_CHMOD;
    case 21: return SC_MOUNT;
    case 52: return SC_UMOUNT2;
    case 94: return SC_FCHMOD;
    case 306: return SC_FCHMODAT;
    case 428: return SC_OPEN_TREE;
    case 429: return SC_MOVE_MOUNT;
    case 430: return SC_FSOPEN;
    case 431: return SC_FSCONFIG;
    case 432: return SC_FSMOUNT;
    case 433: return SC_FSPICK;
    case 442: return SC_MOUNT_SETATTR;
    case 452: return SC_FCHMODAT2;
    default: return SC_UNKNOWN;
  }
}

enum class ArgReader { kReadString, kReadMountData, kReadFsconfigKey, kReadFsconfigValue, kReadMountAttr };

// Which argument of which syscall is read, under which name and how (seccomp.cc has one reader per kind).
struct ArgRead {
  Sc sc;
  const char* name;
  int arg;
  ArgReader how;
};

const ArgRead kArgReads[] = {
    {SC_MOUNT, "source", 0, ArgReader::kReadString},
    {SC_MOUNT, "target", 1, ArgReader::kReadString},
    {SC_MOUNT, "fstype", 2, ArgReader::kReadString},
    {SC_MOUNT, "data", 4, ArgReader::kReadMountData},
    {SC_UMOUNT2, "target", 0, ArgReader::kReadString},
    {SC_OPEN_TREE, "path", 1, ArgReader::kReadString},
    {SC_MOVE_MOUNT, "from_path", 1, ArgReader::kReadString},
    {SC_MOVE_MOUNT, "to_path", 3, ArgReader::kReadString},
    {SC_FSOPEN, "fsname", 0, ArgReader::kReadString},
    {SC_FSCONFIG, "key", 2, ArgReader::kReadFsconfigKey},
    {SC_FSCONFIG, "value", 3, ArgReader::kReadFsconfigValue},
    {SC_FSPICK, "path", 1, ArgReader::kReadString},
    {SC_MOUNT_SETATTR, "path", 1, ArgReader::kReadString},
    {SC_MOUNT_SETATTR, "mountAttr", 3, ArgReader::kReadMountAttr},
    {SC_CHMOD, "path", 0, ArgReader::kReadString},
    {SC_FCHMODAT, "path", 1, ArgReader::kReadString},
    {SC_FCHMODAT2, "path", 1, ArgReader::kReadString},
};

}  // namespace eci_seccomp
