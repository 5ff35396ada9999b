// containerd for integration tests: the one a private dockerd (helpers/dockerd.ts) starts under its
// exec-root, driven with `ctr` (both from Debian docker.io / containerd 1.6). Everything ctr makes
// lives in one containerd namespace under the dockerd's dir, and the runc root (`--runc-root`) is put
// there too, instead of /run/containerd/runc/<ns>.
//
//   const d = await startDockerd();
//   const c = containerdOf(d);
//   const ref = await importImageToContainerd(d, c, await importBusyboxImage(d));
//   const r = await c.ctr(['run', '--rm', ...c.runFlags(m.runtime), ref, 'id1', 'true']);
//   await c.cleanup(); await d.stop();
import { spawn } from 'node:child_process';
import { accessSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { DOCKER, dockerdAvailable, type Dockerd } from './dockerd.ts';
import { removeCgroupTree, runCmd, type PodmanResult } from './podman.ts';

export const CTR = '/usr/bin/ctr';
export const NAMESPACE = 'eci-test';

export type CtrResult = PodmanResult;

export interface Containerd {
  /** The containerd API socket (`ctr -a`). */
  socket: string;
  namespace: string;
  /** `ctr -a <socket> -n <namespace> ...`. Rejects only on spawn failure or timeout. */
  ctr(args: string[], o?: { timeoutMs?: number }): Promise<CtrResult>;
  /** `ctr run` flags selecting `runtime` as runc binary of io.containerd.runc.v2, with a private runc root. */
  runFlags(runtime: string): string[];
  /** Remove this namespace's tasks and containers and the cgroups ctr made (`/<namespace>/<id>`). */
  cleanup(): Promise<void>;
}

/** Whether this machine can run containerd tests; `reason` says why not. */
export function containerdAvailable(): { ok: boolean; reason?: string } {
  const d = dockerdAvailable();
  if (!d.ok) return d;
  try {
    accessSync(CTR, fsc.X_OK);
  } catch {
    return { ok: false, reason: `${CTR} missing (apt-get install docker.io)` };
  }
  return { ok: true };
}

/** The containerd of a private dockerd: its socket is `<exec-root>/containerd/containerd.sock`. */
export function containerdOf(d: Dockerd, namespace = NAMESPACE): Containerd {
  const socket = join(d.dir, 'exec', 'containerd', 'containerd.sock');
  const runcRoot = join(d.dir, 'runc');
  const ctr: Containerd['ctr'] = (args, o = {}) => runCmd(CTR, ['-a', socket, '-n', namespace, ...args], undefined, undefined, o.timeoutMs ?? 120_000);
  return {
    socket,
    namespace,
    ctr,
    runFlags: (runtime) => ['--runc-binary', runtime, '--runc-root', runcRoot],
    async cleanup() {
      const tasks = await ctr(['task', 'ls', '-q']);
      for (const t of tasks.stdout.split(/\s+/).filter(Boolean)) {
        await ctr(['task', 'kill', '-s', 'SIGKILL', t]);
        await ctr(['task', 'rm', '-f', t]);
      }
      const cs = await ctr(['container', 'ls', '-q']);
      for (const c of cs.stdout.split(/\s+/).filter(Boolean)) await ctr(['container', 'rm', c]);
      await removeCgroupTree(`/${namespace}`);
    },
  };
}

/** `docker save IMAGE | ctr image import -` from the dockerd into containerd; returns the full ref. */
export async function importImageToContainerd(d: Dockerd, c: Containerd, image: string): Promise<string> {
  const save = spawn(DOCKER, ['-H', `unix://${d.socket}`, 'save', image], { stdio: ['ignore', 'pipe', 'pipe'] });
  let saveErr = '';
  save.stderr!.setEncoding('utf8').on('data', (s: string) => (saveErr += s));
  const saved = new Promise<number>((res) => save.once('close', (code) => res(code ?? -1)));
  const imp = await runCmd(CTR, ['-a', c.socket, '-n', c.namespace, 'image', 'import', '-'], undefined, save.stdout!, 120_000);
  const saveCode = await saved;
  if (saveCode !== 0) throw new Error(`docker save ${image} failed (${saveCode}): ${saveErr.trim()}`);
  if (imp.code !== 0) throw new Error(`ctr image import failed (${imp.code}): ${imp.stderr.trim()}`);
  // ctr prints "unpacking docker.io/library/eci-busybox:latest (sha256:...)...done".
  const ref = /unpacking (\S+) \(/.exec(imp.stdout + imp.stderr)?.[1];
  if (!ref) throw new Error(`ctr image import: no image ref in its output: ${imp.stdout}${imp.stderr}`);
  return ref;
}
