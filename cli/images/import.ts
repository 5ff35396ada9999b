// `eci image import`: a rootfs tarball (.tar, .tar.gz) or an OCI image layout directory
// (index.json -> manifest -> config + layers, each blob checked against its sha256 digest) becomes
// an image in the store. Built in a temp dir and renamed into place at the end: all or nothing.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { EciError } from '../../actors/errors.ts';
import { applyLayer } from './layers.ts';
import { Progress, type ProgressSink } from './progress.ts';
import { parseImageRef, refString, treeSize, type ImageConfig, type ImageRecord, type ImageRef, type ImageStore } from './store.ts';

export interface ImportOptions { progress?: ProgressSink }

function isGzip(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes every chunk of `source` to a child's `stdin`, with backpressure. Once `stdin` is gone (tar
 * exits at the archive's end marker, before any padding or the gzip trailer, or it died), the rest
 * is still read, so it is counted and hashed, and dropped. Never waits for an event of a stream that
 * may already be closed: a destroyed stream's 'finish' (and so end()'s callback) never comes, which
 * left imports with nothing to wait on (Node's silent exit 13, issue 18).
 */
export async function feed(source: AsyncIterable<Buffer>, stdin: Writable): Promise<void> {
  stdin.on('error', () => {}); // EPIPE: the child's exit status, not the broken pipe, says if the input was good
  const gone = finished(stdin).catch(() => undefined); // settles even for a stream closed already
  const open = () => !stdin.destroyed && !stdin.writableEnded;
  for await (const chunk of source) {
    if (open() && !stdin.write(chunk)) await Promise.race([new Promise((res) => stdin.once('drain', res)), gone]);
  }
  if (open()) stdin.end();
}

/** The child's exit status once it has exited and its stdio is closed; an EciError if it could not run. */
function closed(child: ChildProcess, what: string): Promise<number | EciError> {
  return new Promise((res) => {
    child.once('error', (e) => res(new EciError('EIMPORT', `cannot run ${what}: ${e.message}`)));
    child.once('close', (code) => res(code ?? 1));
  });
}

/**
 * Streams `file` (gunzipped when it is gzip) into `tar -x` in `dest`, counting bytes for the bar
 * and hashing them when `digest` is given (the blob's sha256, checked at the end).
 */
async function untar(file: string, dest: string, progress: Progress, digest?: string): Promise<void> {
  const hash = createHash('sha256');
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      progress.add(chunk.length);
      if (digest) hash.update(chunk);
      cb(null, chunk);
    },
  });
  // --numeric-owner: ids as stored (never looked up on this host); --same-owner/-permissions: as root
  // anyway, but explicit. GNU tar refuses '..' members and makes absolute symlinks placeholders
  // until the end, so a member cannot be written through a symlink of the same archive.
  const tar = spawn('tar', ['-x', '--numeric-owner', '--same-owner', '--same-permissions', '-C', dest, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  const exited = closed(tar, 'tar');
  let stderr = '';
  tar.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const toTar = (src: AsyncIterable<Buffer>) => feed(src, tar.stdin!);
  try {
    if (isGzip(file)) await pipeline(createReadStream(file), count, createGunzip(), toTar);
    else await pipeline(createReadStream(file), count, toTar);
  } catch (e) {
    tar.kill('SIGKILL'); // a read or gunzip error: tar must not go on writing into dest
    const r = await exited;
    const why = stderr.trim().split('\n')[0] || (r instanceof EciError ? r.message : (e as Error).message);
    throw new EciError('EIMPORT', `${file}: ${why}`);
  }
  const code = await exited;
  if (code instanceof EciError) throw code;
  if (code !== 0) throw new EciError('EIMPORT', `${file}: ${stderr.trim().split('\n')[0] || `tar exited with status ${code}`}`);
  if (digest && `sha256:${hash.digest('hex')}` !== digest) throw new EciError('EIMPORT', `${file}: content does not match its digest ${digest}`);
}

/** A default image name from a file or dir name: "alpine-3.19.tar.gz" -> "alpine-3.19". */
export function defaultName(path: string): string {
  const b = basename(resolve(path)).replace(/\.(tar(\.gz)?|tgz)$/i, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+|[._-]+$/g, '');
  return b || 'imported';
}

async function build(store: ImageStore, ref: ImageRef, source: string, fill: (rootfs: string, tmp: string) => Promise<ImageConfig>): Promise<ImageRecord> {
  if (store.get(ref)) throw new EciError('EIMAGEEXISTS', `image ${refString(ref)} already exists (remove it first: eci image rm ${refString(ref)})`);
  const tmp = store.begin();
  try {
    const rootfs = join(tmp, 'rootfs');
    mkdirSync(rootfs, { mode: 0o755 });
    const config = await fill(rootfs, tmp);
    const size = (() => {
      try {
        return treeSize(rootfs);
      } catch (e) {
        throw e instanceof EciError ? new EciError(e.code, `${source}: ${e.message}`) : e;
      }
    })();
    const rec: ImageRecord = { name: ref.name, tag: ref.tag, source, created: new Date().toISOString(), size, config };
    writeFileSync(join(tmp, 'image.json'), JSON.stringify(rec, null, 2) + '\n');
    store.commit(tmp, ref);
    return rec;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Imports a rootfs tarball (plain or gzip). */
export function importTarball(store: ImageStore, file: string, ref: ImageRef, o: ImportOptions = {}): Promise<ImageRecord> {
  const path = resolve(file);
  return build(store, ref, path, async (rootfs) => {
    const p = new Progress(`importing ${refString(ref)}`, statSync(path).size, o.progress);
    await untar(path, rootfs, p);
    p.end();
    return {};
  });
}

interface Descriptor { mediaType?: string; digest?: string; size?: number; platform?: { os?: string; architecture?: string }; annotations?: Record<string, string> }

const DIGEST = /^sha256:[a-f0-9]{64}$/;

function blobPath(layout: string, d: Descriptor, what: string): string {
  if (!d || typeof d.digest !== 'string' || !DIGEST.test(d.digest)) throw new EciError('EIMPORT', `${layout}: ${what}: expected a sha256 digest, got ${JSON.stringify(d?.digest)}`);
  const p = join(layout, 'blobs', 'sha256', d.digest.slice(7));
  if (!existsSync(p)) throw new EciError('EIMPORT', `${layout}: ${what}: blob ${d.digest} is missing`);
  return p;
}

function readJsonBlob<T>(layout: string, d: Descriptor, what: string): T {
  const buf = readFileSync(blobPath(layout, d, what));
  if (`sha256:${createHash('sha256').update(buf).digest('hex')}` !== d.digest) throw new EciError('EIMPORT', `${layout}: ${what}: blob does not match its digest ${d.digest}`);
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch {
    throw new EciError('EIMPORT', `${layout}: ${what}: not valid JSON`);
  }
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The image manifest an OCI layout's index points at (through a nested index: this machine's platform). */
function findManifest(layout: string, tag?: string): Descriptor {
  let index: { manifests?: Descriptor[] };
  try {
    index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  } catch (e) {
    throw new EciError('EIMPORT', `${layout}: cannot read index.json (${(e as NodeJS.ErrnoException).code ?? 'not valid JSON'})`);
  }
  for (let depth = 0; depth < 4; depth++) {
    let ms = Array.isArray(index.manifests) ? index.manifests : [];
    if (ms.length > 1 && tag) {
      const named = ms.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
      if (named.length) ms = named;
    }
    if (ms.length > 1) {
      const arch = GOARCH[process.arch] ?? process.arch;
      const mine = ms.filter((m) => m.platform?.os === 'linux' && m.platform.architecture === arch);
      if (mine.length) ms = mine;
    }
    if (ms.length === 0) throw new EciError('EIMPORT', `${layout}: index.json lists no image for linux/${GOARCH[process.arch] ?? process.arch}`);
    if (ms.length > 1) throw new EciError('EIMPORT', `${layout}: index.json lists ${ms.length} images; name one by its org.opencontainers.image.ref.name as the tag`);
    const d = ms[0];
    if (d.mediaType === 'application/vnd.oci.image.index.v1+json' || d.mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json') {
      index = readJsonBlob(layout, d, 'nested index');
      continue;
    }
    return d;
  }
  throw new EciError('EIMPORT', `${layout}: index.json nests image indexes too deeply`);
}

/** Imports an OCI image layout directory: layers applied in order, with whiteouts. */
export function importOciLayout(store: ImageStore, layout: string, ref: ImageRef, o: ImportOptions = {}): Promise<ImageRecord> {
  const dir = resolve(layout);
  return build(store, ref, dir, async (rootfs, tmp) => {
    const manifest = readJsonBlob<{ config?: Descriptor; layers?: Descriptor[] }>(dir, findManifest(dir, ref.tag), 'manifest');
    const layers = Array.isArray(manifest.layers) ? manifest.layers : [];
    const cfg = manifest.config ? readJsonBlob<{ config?: { Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string; User?: string } }>(dir, manifest.config, 'image config') : {};
    for (const [i, l] of layers.entries()) {
      const mt = l.mediaType ?? '';
      if (/zstd/.test(mt) || !/tar/.test(mt)) throw new EciError('EIMPORT', `${dir}: layer ${i}: unsupported media type ${JSON.stringify(mt)} (eci takes tar and tar+gzip layers)`);
      blobPath(dir, l, `layer ${i}`);
    }
    const total = layers.reduce((n, l) => n + statSync(blobPath(dir, l, 'layer')).size, 0);
    const p = new Progress(`importing ${refString(ref)}`, total, o.progress);
    for (const [i, l] of layers.entries()) {
      const staging = join(tmp, `layer-${i}`);
      mkdirSync(staging, { mode: 0o700 });
      await untar(blobPath(dir, l, `layer ${i}`), staging, p, l.digest);
      applyLayer(staging, rootfs);
      rmSync(staging, { recursive: true, force: true });
    }
    p.end();
    const c = cfg.config ?? {};
    const strings = (v: unknown) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v as string[] : undefined);
    return {
      env: strings(c.Env), entrypoint: strings(c.Entrypoint), cmd: strings(c.Cmd),
      workingDir: typeof c.WorkingDir === 'string' && c.WorkingDir ? c.WorkingDir : undefined,
      user: typeof c.User === 'string' && c.User ? c.User : undefined,
    };
  });
}

/** `eci image import SRC [NAME[:TAG]]`: a directory is an OCI layout, a file a rootfs tarball. */
export function importImage(store: ImageStore, src: string, name: string | undefined, o: ImportOptions = {}): Promise<ImageRecord> {
  let st;
  try {
    st = statSync(src);
  } catch (e) {
    throw new EciError('EIMPORT', `${src}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  const ref = parseImageRef(name ?? defaultName(src));
  if (st.isDirectory()) {
    if (!existsSync(join(src, 'index.json'))) throw new EciError('EIMPORT', `${src}: a directory must be an OCI image layout (no index.json)`);
    return importOciLayout(store, src, ref, o);
  }
  return importTarball(store, src, ref, o);
}
