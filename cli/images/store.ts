// The local image store: $ECI_STATE_DIR/images/<name>/<tag>/{rootfs/, image.json}. A name's '/'
// is stored as '+' (paths stay free of ':' and ',', which overlay options cannot carry). Files in
// rootfs/ keep the image's own ids (0..65535); eci idmaps them when a container mounts them.
// Every import is built in images/.tmp-* and renamed into place at the end, so a failed or
// interrupted import leaves nothing visible (stale .tmp-* dirs are swept by the next import).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EciError } from '../../actors/errors.ts';

/** What an image says about how to run it (from an OCI image config; empty for a rootfs tarball). */
export interface ImageConfig {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
}

export interface ImageRecord {
  name: string;
  tag: string;
  /** Where the image came from: a file, a layout dir, or "builtin". */
  source: string;
  created: string;
  /** Bytes of the files in the rootfs (apparent size). */
  size: number;
  config: ImageConfig;
}

export interface ImageRef { name: string; tag: string }

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Parses NAME[:TAG] (Docker's rules, lower-case names, no registry port); the tag defaults to latest. */
export function parseImageRef(ref: string): ImageRef {
  const colon = ref.lastIndexOf(':');
  const name = colon > ref.lastIndexOf('/') && colon >= 0 ? ref.slice(0, colon) : ref;
  const tag = colon > ref.lastIndexOf('/') && colon >= 0 ? ref.slice(colon + 1) : 'latest';
  if (!NAME.test(name) || name.length > 255) {
    throw new EciError('EIMAGEREF', `invalid image name ${JSON.stringify(ref)}: expected lower-case [a-z0-9._-] components separated by '/'`);
  }
  if (!TAG.test(tag)) throw new EciError('EIMAGEREF', `invalid image tag ${JSON.stringify(tag)} in ${JSON.stringify(ref)}`);
  return { name, tag };
}

export const refString = (r: ImageRef) => `${r.name}:${r.tag}`;

export class ImageStore {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'images');
  }

  /** The directory of an image (it may not exist). */
  path(r: ImageRef): string {
    return join(this.dir, r.name.replaceAll('/', '+'), r.tag);
  }

  rootfs(r: ImageRef): string {
    return join(this.path(r), 'rootfs');
  }

  get(r: ImageRef): ImageRecord | undefined {
    try {
      return JSON.parse(readFileSync(join(this.path(r), 'image.json'), 'utf8')) as ImageRecord;
    } catch {
      return undefined;
    }
  }

  list(): ImageRecord[] {
    const out: ImageRecord[] = [];
    if (!existsSync(this.dir)) return out;
    for (const n of readdirSync(this.dir)) {
      if (n.startsWith('.')) continue;
      for (const t of readdirSync(join(this.dir, n))) {
        const rec = this.get({ name: n.replaceAll('+', '/'), tag: t });
        if (rec) out.push(rec);
      }
    }
    return out.sort((a, b) => refString(a).localeCompare(refString(b)));
  }

  /** A fresh private work dir for an import (images/.tmp-<random>), after sweeping stale ones. */
  begin(): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const n of readdirSync(this.dir)) {
      // A .tmp-* dir whose importer (pid in its name) is gone is debris from a killed import.
      const pid = /^\.tmp-(\d+)-/.exec(n)?.[1];
      if (pid && !alive(Number(pid))) rmSync(join(this.dir, n), { recursive: true, force: true });
    }
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    return tmp;
  }

  /** Moves a finished import (tmp with rootfs/ and image.json) into place; refuses to replace. */
  commit(tmp: string, r: ImageRef): void {
    const dest = this.path(r);
    mkdirSync(join(dest, '..'), { recursive: true, mode: 0o700 });
    try {
      // rename(2) onto an existing non-empty dir fails: two imports of one name cannot both win.
      if (existsSync(dest)) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
      renameSync(tmp, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTEMPTY') {
        throw new EciError('EIMAGEEXISTS', `image ${refString(r)} already exists (remove it first: eci image rm ${refString(r)})`);
      }
      throw e;
    }
  }

  /**
   * Removes an image. Refused while a container's overlay uses it as a lower layer (its files
   * would vanish under the running container).
   */
  remove(r: ImageRef, mountinfo: string): void {
    const dir = this.path(r);
    if (!this.get(r)) throw new EciError('ENOIMAGE', `no such image: ${refString(r)}`);
    if (mountinfo.includes(`lowerdir=${this.rootfs(r)}`) || mountinfo.includes(`:${this.rootfs(r)}`)) {
      throw new EciError('EIMAGEBUSY', `image ${refString(r)} is in use by a running container`);
    }
    // Rename first, then delete: the image disappears at once, never half-removed.
    const trash = join(this.dir, `.tmp-${process.pid}-rm-${randomBytes(4).toString('hex')}`);
    renameSync(dir, trash);
    rmSync(trash, { recursive: true, force: true });
    try {
      const parent = join(dir, '..');
      if (readdirSync(parent).length === 0) rmSync(parent, { recursive: true });
    } catch { /* another tag appeared meanwhile */ }
  }
}

/** Whether a process exists (EPERM: it does, owned by someone else). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The highest id a file in an image may have: a container's range maps 0..65535. */
export const MAX_IMAGE_ID = 65535;

/**
 * Apparent size of a tree, without following symlinks. Refuses a file owned by an id the
 * container's mapping cannot carry (as Docker with userns-remap refuses to use such a layer).
 */
export function treeSize(dir: string, top = dir): number {
  let n = 0;
  if (dir === top) {
    const st = lstatSync(dir);
    if (st.uid > MAX_IMAGE_ID || st.gid > MAX_IMAGE_ID) throw new EciError('EIMAGEIDS', `/ is owned by ${st.uid}:${st.gid}; eci images hold ids 0..${MAX_IMAGE_ID} only`);
  }
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const st = lstatSync(p);
    if (st.uid > MAX_IMAGE_ID || st.gid > MAX_IMAGE_ID) {
      throw new EciError('EIMAGEIDS', `${p.slice(top.length) || '/'} is owned by ${st.uid}:${st.gid}; eci images hold ids 0..${MAX_IMAGE_ID} only`);
    }
    n += e.isDirectory() ? treeSize(p, top) : st.size;
  }
  return n;
}
