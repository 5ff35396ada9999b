// The checks a config.json must pass before eci takes anything for the container (a range, mounts).
// Pure: host facts (namespaces, paths) are asked through the context.
import { checkBindMounts, type BindDecision, type ImageInfo, type MountPolicy, type Resolved } from '../policy/mounts.ts';
import { checkNamespaces, type OciSpec } from '../runc/spec.ts';
import { EciError } from '../errors.ts';
import type { SpecStep } from './steps.ts';
import { withoutEngineCgroupBinds, type SystemInit } from './system-init.ts';

/** An eci container whose namespace a spec joins: its group and its init's host pid. */
export interface NamespaceOwner { id: string; group: string; pid: number }

/** What shared-namespaces decided: the group the new container joins (one user namespace, one range). */
export interface GroupJoin {
  group: string;
  /** The eci containers whose namespaces it joins (their engine files are its own too). */
  containers: string[];
  /** The user namespace to join: the owners' (one of their inits'). */
  userns: string;
}

/** Why a namespace that no eci container owns cannot be joined (one line, the reason named). */
export const notEciNamespaceMessage = (type: string, path: string) =>
  `eci containers can only share namespaces with other eci containers: the ${type} namespace ${path} belongs to no eci container (a container eci does not isolate, e.g. a runc container, lives in the host's user namespace)`;

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
  /** The host dir a mountpoint binds (mountinfo.ts bindOrigin). */
  bindOrigin?(path: string): string | null | undefined;
  /** Set by mount-policy: what each bind mount is (volumes and engine sockets are idmapped by eci). */
  decisions: BindDecision[];
  /**
   * The live eci container whose `type` namespace is at `path` (undefined: none); absent when eci is
   * turned off (then namespaces are runc's business). Throws an EciError when the path cannot be checked.
   */
  namespaceOwner?(type: string, path: string): NamespaceOwner | undefined;
  /** Set by shared-namespaces when the spec joins eci containers' namespaces. */
  joins?: GroupJoin;
  /** Set when the container's process is systemd (actors/system-init.ts). */
  systemInit?: SystemInit;
}

/**
 * The group a spec joins through its namespace paths (user excepted: eci sets it), or undefined when
 * it joins none. Refuses a namespace no eci container owns, and owners of different groups (one
 * container has one user namespace).
 */
export function groupJoin(spec: OciSpec, owner: (type: string, path: string) => NamespaceOwner | undefined): GroupJoin | undefined {
  const owners: NamespaceOwner[] = [];
  for (const n of spec.linux?.namespaces ?? []) {
    if (n.type === 'user' || !n.path) continue;
    const o = owner(n.type, n.path);
    if (!o) throw new EciError('EJOINNS', notEciNamespaceMessage(n.type, n.path));
    owners.push(o);
  }
  if (!owners.length) return undefined;
  const groups = [...new Set(owners.map((o) => o.group))];
  if (groups.length > 1) {
    throw new EciError('EJOINNS', `eci containers can't join namespaces of containers in different groups (${groups.join(', ')}): each group has its own user namespace`);
  }
  return { group: groups[0], containers: [...new Set(owners.map((o) => o.id))], userns: `/proc/${owners[0].pid}/ns/user` };
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
    // A namespace path must be an eci container's: the new container then joins its group (user
    // namespace and range). Apart from host-namespaces so that its refusals name their own step.
    name: 'shared-namespaces',
    run(spec, c) {
      c.joins = c.namespaceOwner ? groupJoin(spec, (t, p) => c.namespaceOwner!(t, p)) : undefined;
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
      c.decisions = c.mountPolicy ? checkBindMounts(spec, { id: c.id, bundle: c.bundle, pidFile: c.pidFile, joined: c.joins?.containers, image: c.image, resolve: c.resolve, bindOrigin: c.bindOrigin, policy: c.mountPolicy }) : [];
      return spec;
    },
  },
];
