// Docker's libnetwork-setkey prestart hook runs eci's C equivalent (native/cmd/eci-setkey.c) instead
// of the dockerd binary again. dockerd 20.10 hooks every container it gives a network namespace with
// `/proc/<dockerd pid>/exe libnetwork-setkey -exec-root=DIR <container id> <short controller id>`: a
// second start of the whole daemon (~90 ms of CPU per container) whose only work is to send the
// container's netns path over DIR/libnetwork/<short id>.sock. Only that exact form is taken: another
// Docker version's hook (another protocol) runs as the engine wrote it.
import type { OciSpec } from '../runc/spec.ts';

export interface Hook { path: string; args?: string[]; env?: string[]; timeout?: number }

const DOCKERD_EXE = /^\/proc\/[1-9][0-9]*\/exe$/;
const EXEC_ROOT = /^-exec-root=\/[^\0]*$/;
const CONTAINER_ID = /^[0-9a-f]{1,128}$/;
const CONTROLLER_ID = /^[0-9a-f]{1,64}$/;
/** The hook lists runc runs in the runtime's namespaces with the OCI state on stdin. */
const STAGES = ['prestart', 'createRuntime'] as const;

/** Whether `h` is dockerd 20.10's libnetwork-setkey hook, in exactly the form eci-setkey speaks. */
export function isDockerSetkey(h: unknown): h is Hook {
  if (!h || typeof h !== 'object') return false;
  const { path, args } = h as Partial<Hook>;
  return typeof path === 'string' && DOCKERD_EXE.test(path) && Array.isArray(args) && args.length === 4 &&
    args[0] === 'libnetwork-setkey' && typeof args[1] === 'string' && EXEC_ROOT.test(args[1]) &&
    typeof args[2] === 'string' && CONTAINER_ID.test(args[2]) && typeof args[3] === 'string' && CONTROLLER_ID.test(args[3]);
}

/** The spec with Docker's setkey hooks pointed at `bin` (eci-setkey's absolute path); unchanged without one. */
export function withNativeSetkey(spec: OciSpec, bin: string | undefined): OciSpec {
  const hooks = spec.hooks as Record<string, unknown> | undefined;
  if (!bin || !hooks || typeof hooks !== 'object') return spec;
  let changed = false;
  const out: Record<string, unknown> = { ...hooks };
  for (const stage of STAGES) {
    const list = hooks[stage];
    if (!Array.isArray(list) || !list.some(isDockerSetkey)) continue;
    changed = true;
    out[stage] = list.map((h) => (isDockerSetkey(h) ? { ...h, path: bin, args: ['eci-setkey', ...h.args!.slice(1)] } : h));
  }
  return changed ? { ...spec, hooks: out } : spec;
}
