// The checks a config.json must pass before eci takes anything for the container (a range, mounts).
// Pure: host facts (namespaces, paths) are asked through the context.
import { checkBindMounts, type BindDecision, type ImageInfo, type MountPolicy, type Resolved } from '../policy/mounts.ts';
import { checkNamespaces } from '../runc/spec.ts';
import type { SpecStep } from './steps.ts';
import { withoutEngineCgroupBinds, type SystemInit } from './system-init.ts';

export interface CheckContext {
  id: string;
  bundle: string;
  /** The engine's --pid-file (Podman's points into its per-container run dir). */
  pidFile?: string;
  /** Whether a namespace path is the host's own (stat of /proc/1/ns). */
  isHostNamespace(type: string, path: string): boolean;
  /** The admin's bind-mount policy; undefined when eci is turned off (mounts pass as they are). */
  mountPolicy?: MountPolicy;
  image?: ImageInfo;
  /** realpath + stat of a host path, undefined when it does not exist. */
  resolve(p: string): Resolved | undefined;
  /** Set by mount-policy: what each bind mount is (volumes and engine sockets are idmapped by eci). */
  decisions: BindDecision[];
  /** Set when the container's process is systemd (actors/system-init.ts). */
  systemInit?: SystemInit;
}

export const CHECK_STEPS: readonly SpecStep<CheckContext>[] = [
  {
    // Every namespace but user must be the container's own; the message is Docker Desktop ECI's.
    name: 'host-namespaces',
    fixedMessage: true,
    run(spec, c) {
      checkNamespaces(spec, c.isHostNamespace);
      return spec;
    },
  },
  {
    // systemd as PID 1 gets its own cgroup view from eci: an engine's bind of host cgroup trees
    // (Podman's systemd mode binds the host's name=systemd hierarchy on cgroup v1) goes, before the policy sees it.
    name: 'init-cgroup-binds',
    run: (spec, c) => withoutEngineCgroupBinds(spec, c.systemInit),
  },
  {
    // Restricted host paths, shared paths, engine sockets only for trusted images.
    name: 'mount-policy',
    run(spec, c) {
      c.decisions = c.mountPolicy ? checkBindMounts(spec, { id: c.id, bundle: c.bundle, pidFile: c.pidFile, image: c.image, resolve: c.resolve, policy: c.mountPolicy }) : [];
      return spec;
    },
  },
];
