// Applies an unpacked image layer onto a rootfs with OCI whiteout semantics: `.wh.NAME` deletes NAME
// from the layers below, `.wh..wh..opq` empties its directory first. Each layer is unpacked into an
// empty staging dir of its own (so tar never writes through a symlink an earlier layer made) and
// merged here without following symlinks: a directory is entered only when it is a real directory
// on both sides; anything else replaces what was there.
import { lstatSync, mkdirSync, readdirSync, renameSync, rmSync, chmodSync, lchownSync, utimesSync, type Stats } from 'node:fs';
import { join } from 'node:path';

export const OPAQUE = '.wh..wh..opq';
export const WHITEOUT = '.wh.';

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

const empty = (dir: string) => {
  for (const n of readdirSync(dir)) rmSync(join(dir, n), { recursive: true, force: true });
};

/** Merges `layer` (a staging dir, consumed) into `root` (a real directory of the rootfs). */
export function applyLayer(layer: string, root: string): void {
  const names = readdirSync(layer);
  if (names.includes(OPAQUE)) empty(root);
  for (const n of names) {
    if (n === OPAQUE) continue;
    if (n.startsWith(WHITEOUT)) {
      const gone = n.slice(WHITEOUT.length);
      // rm never follows a symlink it removes; '.'/'..' would name the dir itself or its parent.
      if (gone !== '' && gone !== '.' && gone !== '..') rmSync(join(root, gone), { recursive: true, force: true });
      continue;
    }
    const src = join(layer, n);
    const dst = join(root, n);
    const s = lstatSync(src);
    const d = lstatOrUndefined(dst);
    if (s.isDirectory()) {
      if (!d?.isDirectory()) {
        if (d) rmSync(dst, { recursive: true, force: true });
        mkdirSync(dst);
      }
      applyLayer(src, dst);
      // The layer's metadata wins for a directory it names (as overlayfs shows the upper one).
      lchownSync(dst, s.uid, s.gid);
      chmodSync(dst, s.mode & 0o7777);
      utimesSync(dst, s.atime, s.mtime);
    } else {
      if (d) rmSync(dst, { recursive: true, force: true });
      renameSync(src, dst); // same filesystem: keeps the inode, its ids, mode, xattrs and hard links
    }
  }
}
