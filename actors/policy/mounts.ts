// Bind-mount policy, applied when a container is created. Pure: the filesystem is asked through
// `resolve` (realpath + stat), so every rule is unit-tested with a fake tree.
//   - this container's own engine files (found from its bundle, see engine-layout.ts) pass: hosts,
//     hostname, resolv.conf and .containerenv idmapped, so container root owns and writes them as
//     under runc; anything else of its own (shm, the bundle) as it is;
//   - an engine socket passes only for a trusted image;
//   - anything that is, is inside, or contains a restricted path (or any container's engine dir)
//     is refused;
//   - the engine's named volumes pass, wherever its data root is, unless the volume is a bind of a
//     host directory (local driver, `-o bind`): then that directory must pass as a bind would;
//   - read-only system files (readOnlySystemFiles, the engine's --init binary) pass only read-only;
//   - anything else outside the shared paths (fileSharing) is refused;
// and every decision is taken on the fully resolved path (symlinks, '..', '//').
import { isAbsolute, join, normalize, resolve as resolvePath } from 'node:path';
import { EciError } from '../errors.ts';
import type { OciSpec } from '../runc/spec.ts';
import { engineLayout, ENGINE_INIT_TARGETS, isNamedVolume, SYSTEM_BINARY_DIRS } from './engine-layout.ts';

export interface Resolved { path: string; dev: bigint; ino: bigint; isDir: boolean }

export interface MountPolicy {
  restricted: string[];
  shared: string[];
  engineSockets: string[];
  trustedImages: string[];
  /** Harmless host files that may be bind-mounted read-only (never read-write) from anywhere. */
  readOnlySystemFiles?: string[];
}

export interface ImageInfo { name?: string; id?: string }

export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }

/**
 * What a bind mount is. `engine-file` passes as it is; the others are idmapped by eci:
 * `engine-writable` (the engine's hosts/hostname/resolv.conf: container root owns them, as under
 * runc), `system-file` (read-only system files and the --init binary: root-owned inside).
 */
export type BindDecision =
  | { index: number; kind: 'engine-file' }
  | { index: number; kind: 'volume' | 'engine-socket' | 'engine-writable' | 'system-file'; source: string; resolved: Resolved; readonly: boolean };

/** The per-container files engines write for the container and runc mounts writable. */
const ENGINE_WRITABLE = new Set(['hosts', 'hostname', 'resolv.conf', '.containerenv']);

export function isBind(m: OciMount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

const within = (p: string, dir: string) => p === dir || p.startsWith(dir === '/' ? '/' : dir + '/');

/** Docker/containerd names for the same image compare equal: docker.io/library/x:latest == x. */
export function normalizeImage(ref: string): string {
  let r = ref.replace(/^docker\.io\//, '').replace(/^library\//, '');
  const at = r.indexOf('@');
  const name = at >= 0 ? r.slice(0, at) : r;
  if (at < 0 && !/:[^/]+$/.test(name)) r = `${r}:latest`;
  return r;
}

export function imageTrusted(image: ImageInfo | undefined, trusted: string[]): boolean {
  if (!image || (!image.name && !image.id)) return false;
  for (const t of trusted) {
    if (t === '*') return true;
    const digest = /(?:^|@)(sha256:[0-9a-f]{64})$/.exec(t)?.[1];
    if (digest) {
      if (image.id === digest) return true; // a digest pins one exact image
      continue;
    }
    if (!image.name) continue;
    const want = normalizeImage(t);
    const have = normalizeImage(image.name);
    if (want.endsWith(':*') ? have.startsWith(want.slice(0, -1)) : want === have) return true;
  }
  return false;
}

export function checkBindMounts(
  spec: OciSpec,
  c: {
    id: string; bundle: string; pidFile?: string; joined?: readonly string[]; policy: MountPolicy; image?: ImageInfo; resolve: (p: string) => Resolved | undefined;
    /** The host dir a mountpoint binds (mountinfo.ts bindOrigin): undefined when none, null when unknown. */
    bindOrigin?: (path: string) => string | null | undefined;
  },
): BindDecision[] {
  const out: BindDecision[] = [];
  const mounts = (spec.mounts ?? []) as OciMount[];
  const real = (p: string) => c.resolve(p)?.path ?? normalize(p);
  const layout = engineLayout(spec, c);
  const both = (r: string) => [...new Set([normalize(r), real(r)])];
  const restricted = [...c.policy.restricted, ...layout.containerDirs].flatMap(both);
  const shared = c.policy.shared.map(real);
  const sockets = new Set(c.policy.engineSockets.flatMap((s) => [normalize(s), real(s)]));
  const engineDirs = layout.ownDirs.flatMap(both);
  const volumeRoots = layout.volumeRoots.map(real);
  const systemFiles = (c.policy.readOnlySystemFiles ?? []).map(real);
  const initArg = (spec.process as { args?: unknown[] } | undefined)?.args?.[0];

  mounts.forEach((m, index) => {
    if (!isBind(m)) return;
    if (typeof m.source !== 'string' || m.source === '') throw new EciError('EBADSPEC', `mounts[${index}] (${m.destination}): bind mount without a source`);
    const given = normalize(isAbsolute(m.source) ? m.source : join(c.bundle, m.source));
    const r = c.resolve(given);
    const path = r?.path ?? given;
    const readonly = (m.options ?? []).includes('ro');
    // Engine-managed files of this very container (hosts, hostname, resolv.conf, shm, the bundle).
    const own = r && engineDirs.find((d) => within(path, d));
    if (r && own) {
      if (!r.isDir && !readonly && ENGINE_WRITABLE.has(path.slice(own.length + 1))) out.push({ index, kind: 'engine-writable', source: m.source, resolved: r, readonly });
      else out.push({ index, kind: 'engine-file' });
      return;
    }
    if (sockets.has(given) || sockets.has(path)) {
      if (!imageTrusted(c.image, c.policy.trustedImages)) {
        throw new EciError('EPOLICY', `can't mount ${m.source} because the engine socket may only be mounted into trusted images (dockerSocketMount.imageList); ${c.image?.name ?? c.image?.id ? `image ${c.image?.name ?? c.image?.id} is not on the list` : "the container's image is unknown"}`);
      }
      if (!r) throw new EciError('EPOLICY', `can't mount ${m.source}: no such file or directory`);
      out.push({ index, kind: 'engine-socket', source: m.source, resolved: r, readonly });
      return;
    }
    const refuseRestricted = (paths: Iterable<string>) => {
      for (const p of paths) {
        for (const x of restricted) {
          if (within(p, x)) {
            throw new EciError('EPOLICY', `can't mount ${m.source} because it's configured as a restricted host mount${p !== given || given !== m.source ? ` (it resolves to ${p}, inside ${x})` : ''}`);
          }
          if (within(x, p)) {
            throw new EciError('EPOLICY', `can't mount ${m.source} because it contains ${x}, which is configured as a restricted host mount`);
          }
        }
      }
    };
    refuseRestricted(new Set([given, path]));
    if (r && isNamedVolume(path, volumeRoots)) {
      // A local volume made with `-o bind,device=DIR` is DIR itself: judged as a bind of DIR.
      const origin = c.bindOrigin?.(path);
      if (origin === null) throw new EciError('EPOLICY', `can't mount ${m.source} because the volume binds a host directory eci cannot locate`);
      if (origin !== undefined) {
        refuseRestricted([origin, real(origin)]);
        if (!shared.some((s) => within(real(origin), s))) {
          throw new EciError('EPOLICY', `can't mount ${m.source} because the volume binds ${origin}, which is not in the host paths shared with containers (fileSharing: ${c.policy.shared.join(', ')})`);
        }
      }
      out.push({ index, kind: 'volume', source: m.source, resolved: r, readonly });
      return;
    }
    if (shared.some((s) => within(path, s))) {
      if (!r) throw new EciError('EPOLICY', `can't mount ${m.source}: no such file or directory`);
      out.push({ index, kind: 'volume', source: m.source, resolved: r, readonly });
      return;
    }
    // The engine's --init binary: a system binary, read-only, run as the container's first process.
    const engineInit = r && !r.isDir && ENGINE_INIT_TARGETS.includes(normalize(m.destination)) && initArg === normalize(m.destination) && SYSTEM_BINARY_DIRS.some((d) => within(path, d));
    if (r && (engineInit || systemFiles.some((s) => within(path, s)))) {
      if (!readonly) {
        throw new EciError('EPOLICY', `can't mount ${m.source} read-write because it is a read-only system file (readOnlySystemFiles); mount it with :ro`);
      }
      out.push({ index, kind: 'system-file', source: m.source, resolved: r, readonly });
      return;
    }
    throw new EciError('EPOLICY', `can't mount ${m.source} because it is not in the host paths shared with containers (fileSharing: ${c.policy.shared.join(', ')})`);
  });
  return out;
}

/** Resolves relative to the bundle, for callers that need the same rule as checkBindMounts. */
export const bindSourceOf = (bundle: string, source: string) => (isAbsolute(source) ? normalize(source) : resolvePath(bundle, source));
