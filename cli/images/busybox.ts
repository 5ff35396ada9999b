// The built-in `busybox` image: the host's static busybox (Debian busybox-static, /bin/busybox), a
// symlink per applet, /etc/passwd and /etc/group, and the usual mount points. Made in the store on
// first use (or by `eci image import --busybox`); needs no network and no registry.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, mkdirSync, openSync, readSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EciError } from '../../actors/errors.ts';
import { refString, treeSize, type ImageRecord, type ImageRef, type ImageStore } from './store.ts';

export const BUSYBOX_REF: ImageRef = { name: 'busybox', tag: 'latest' };
export const HOST_BUSYBOX = '/bin/busybox';

/** Whether an ELF file asks for a program interpreter (is dynamically linked). */
export function isDynamicElf(head: Buffer): boolean {
  if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) throw new Error('not a 64-bit ELF file');
  const phoff = Number(head.readBigUInt64LE(0x20));
  const phentsize = head.readUInt16LE(0x36);
  const phnum = head.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > head.length) break;
    if (head.readUInt32LE(off) === 3) return true; // PT_INTERP
  }
  return false;
}

function checkStatic(path: string): void {
  const head = Buffer.alloc(4096);
  let n = 0;
  try {
    const fd = openSync(path, 'r');
    try { n = readSync(fd, head, 0, head.length, 0); } finally { closeSync(fd); }
  } catch {
    throw new EciError('ENOBUSYBOX', `${path} not found: install the busybox-static package for the built-in busybox image`);
  }
  let dyn: boolean;
  try {
    dyn = isDynamicElf(head.subarray(0, n));
  } catch (e) {
    throw new EciError('ENOBUSYBOX', `${path}: ${(e as Error).message}`);
  }
  if (dyn) throw new EciError('ENOBUSYBOX', `${path} is dynamically linked: install busybox-static for the built-in busybox image`);
}

/** Fills `rootfs` (an empty dir) with the busybox tree. */
export function makeBusyboxTree(rootfs: string, busybox = HOST_BUSYBOX): void {
  checkStatic(busybox);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'root', 'tmp', 'var', 'home']) mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(rootfs, 0o755);
  chmodSync(join(rootfs, 'root'), 0o700);
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = [...new Set(execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').map((s) => s.trim()))]
    .filter((a) => a && a !== 'busybox' && !a.includes('/'));
  if (!applets.length) throw new EciError('ENOBUSYBOX', `${busybox} --list printed no applets`);
  for (const a of applets) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n', { mode: 0o644 });
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnobody:x:65534:\n', { mode: 0o644 });
}

/** The busybox image, made now if the store lacks it (a concurrent maker winning is fine). */
export async function ensureBusybox(store: ImageStore): Promise<ImageRecord> {
  const have = store.get(BUSYBOX_REF);
  if (have) return have;
  const { rmSync } = await import('node:fs');
  const tmp = store.begin();
  try {
    makeBusyboxTree(join(tmp, 'rootfs'));
    const rec: ImageRecord = {
      name: BUSYBOX_REF.name, tag: BUSYBOX_REF.tag, source: 'builtin', created: new Date().toISOString(), size: treeSize(join(tmp, 'rootfs')),
      config: { env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], cmd: ['sh'] },
    };
    writeFileSync(join(tmp, 'image.json'), JSON.stringify(rec, null, 2) + '\n');
    store.commit(tmp, BUSYBOX_REF);
    return rec;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const raced = store.get(BUSYBOX_REF);
    if (raced) return raced;
    throw e instanceof EciError ? e : new EciError('ENOBUSYBOX', `cannot make image ${refString(BUSYBOX_REF)}: ${(e as Error).message}`);
  }
}
