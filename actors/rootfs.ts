// Presents a container's rootfs through idmapped mounts, with no chown. eci's mount is stacked on
// the engine's rootfs path itself, so config.json keeps its root.path and the engine's own tools
// (docker cp, diff, commit) see the same files:
//   - an overlay rootfs (Docker's overlay2) is rebuilt over idmapped layers from inside a user
//     namespace; writes go to the engine's upper dir as ids 0..65535;
//   - a plain directory gets an idmapped bind mount of itself.
// Cleanup unmounts exactly the mount eci made (by mount id), never the engine's below it.
import { realpathSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { EciError } from './errors.ts';
import { commonAncestor, mountAt, overlayLayers, parseMountInfo } from './mountinfo.ts';
import type { IdRange } from './runc/spec.ts';

export type RootfsPlan =
  | { kind: 'overlay'; target: string; base: string; lower: string[]; upper: string; work: string }
  | { kind: 'bind'; target: string; source: string };

export interface RootfsNative {
  mountRootfsOverlay(o: { base: string; lower: string[]; upper: string; work: string; target: string; uid: IdRange; gid: IdRange }): Promise<void>;
  mountRootfsBind(o: { source: string; target: string; uid: IdRange; gid: IdRange }): Promise<void>;
  unmount(target: string, o?: { detach?: boolean }): void;
  isMountpoint(path: string): boolean;
}

const readMountInfo = () => readFileSync('/proc/self/mountinfo', 'utf8');

function real(p: string, what: string): string {
  try {
    return realpathSync(p);
  } catch (e) {
    throw new EciError('EROOTFS', `${what} ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** Decides how to map the rootfs at `rootPath` (absolute), from the host's mount table. */
export function planRootfs(rootPath: string, mountinfo = readMountInfo()): RootfsPlan {
  const path = real(rootPath, 'rootfs');
  if (!statSync(path).isDirectory()) throw new EciError('EROOTFS', `rootfs ${path} is not a directory`);
  const m = mountAt(parseMountInfo(mountinfo), path);
  if (m?.fsType !== 'overlay') return { kind: 'bind', target: path, source: path };
  const l = overlayLayers(m.superOptions);
  if (!l.lower.length) throw new EciError('EROOTFS', `rootfs ${path}: overlay without lowerdir`);
  if (!l.upper || !l.work) {
    throw new EciError('EROOTFS', `rootfs ${path}: a read-only overlay (no upperdir) is not supported yet`);
  }
  // Docker's overlay2 mounts long layer lists with paths relative to its driver home, which is
  // the grandparent of the mountpoint (<home>/<id>/merged).
  const home = dirname(dirname(path));
  const abs = (p: string, what: string) => real(isAbsolute(p) ? p : resolve(home, p), what);
  const lower = l.lower.map((p) => abs(p, 'overlay lowerdir'));
  const upper = abs(l.upper, 'overlay upperdir');
  const work = abs(l.work, 'overlay workdir');
  return { kind: 'overlay', target: path, base: commonAncestor([...lower, upper, work]), lower, upper, work };
}

/** Mounts the rootfs over plan.target and returns the id of the new mount. */
export async function mountRootfs(native: RootfsNative, plan: RootfsPlan, uid: IdRange, gid: IdRange, mountinfo = readMountInfo): Promise<number> {
  const before = mountAt(parseMountInfo(mountinfo()), plan.target)?.id;
  if (plan.kind === 'overlay') {
    await native.mountRootfsOverlay({ base: plan.base, lower: plan.lower, upper: plan.upper, work: plan.work, target: plan.target, uid, gid });
  } else {
    await native.mountRootfsBind({ source: plan.source, target: plan.target, uid, gid });
  }
  const after = mountAt(parseMountInfo(mountinfo()), plan.target)?.id;
  if (after === undefined || after === before) {
    throw new EciError('EROOTFS', `rootfs ${plan.target}: the idmapped mount did not appear`);
  }
  return after;
}

/** Unmounts eci's rootfs mount if it is still the top mount at `target`. Idempotent. */
export function unmountRootfs(native: RootfsNative, target: string, mountId: number, mountinfo = readMountInfo): boolean {
  if (mountAt(parseMountInfo(mountinfo()), target)?.id !== mountId) return false;
  native.unmount(target, { detach: true });
  return true;
}
