// What the manager does for each runc verb the launcher forwards. `create` is the one that matters:
// check the spec, get a range from the allocator, map the rootfs, rewrite config.json, then let
// runc run; anything that fails leaves nothing behind.
import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { EciError, oneLine } from './errors.ts';
import { parseRuncArgs, runcStateDir, type RuncCommandLine } from './runc/cli.ts';
import { runcContainerEmpty, runcInitPid } from './runc/state.ts';
import { clampProcessRlimits, parseHardLimits, parseSpec, type OciSpec } from './runc/spec.ts';
import { planRootfs, type BindPlan, type RootfsPlan } from './rootfs.ts';
import { capsFromMask } from './runc/caps.ts';
import { needsCreateRules } from './setuid-exposure.ts';
import type { ImageInfo, OciMount, Resolved } from './policy/mounts.ts';
import { bindOrigin, parseMountInfo } from './mountinfo.ts';
import { CHECK_STEPS, type CheckContext, type NamespaceOwner } from './spec/checks.ts';
import { emulatedProcMounts, REWRITE_STEPS, withMounts } from './spec/rewrite.ts';
import { innerDataMounts, innerDataTargets, systemWorkload } from './spec/system-container.ts';
import { runSteps } from './spec/steps.ts';
import { SYSTEMD_STOP_SIGNAL, type SystemInit } from './spec/system-init.ts';
import { detectSystemInit, hostCgroupLayout } from './system-init.ts';
import { delegateCgroups } from './cgroup-delegation.ts';
import { writeStopSignal } from './stop-signal.ts';
import { BUILTIN_RESTRICTED, type Settings } from './settings.ts';
import type { ContainerActor } from './container.actor.ts';
import type { ShimReply } from './shim-protocol.ts';
import type { StartGate } from './start-gate.ts';

export { EMULATED_PROC_FILES, emulatedProcMounts } from './spec/rewrite.ts';

export interface RuntimeHost {
  runc: string;
  log: Logger;
  container(id: string): ContainerActor | undefined;
  /**
   * Starts the actor for a new container; the rootfs and binds are mapped following `plan`. `join`:
   * an eci container whose group (user namespace and range) it joins instead of getting a range.
   */
  createContainer(id: string, bundle: string, runcRoot: string | undefined, plan: { rootfs: RootfsPlan; binds: BindPlan[] }, o?: { join?: string }): ContainerActor;
  isHostNamespace(type: string, path: string): boolean;
  /**
   * Resolves once the container's range is recorded (undefined) or with why it cannot be used. The
   * range is decided before its KV write lands; runc must not run before it has.
   */
  rangeRecorded?(id: string): Promise<string | undefined>;
  /** Resolves once the fd-holder holds the container's notify fd, if its hand-over is under way. */
  notifyFdHeld?(id: string): Promise<void>;
  /** The mountinfo line of the mount whose root `path` is ('' none, null: read the table); see native mountInfoAt. */
  mountInfoAt?(path: string): string | null;
  /** Work left from create that start waits for (absent: create does it before it answers). */
  startGate?: StartGate;
  /** The live eci container whose `type` namespace is at `path` (undefined: none); see manager/group-ns.ts. */
  namespaceOwner?(type: string, path: string): NamespaceOwner | undefined;
  /** The admin settings in force now. */
  settings(): Settings;
  /** Where eci keeps a container's mounts (binds go under <dir>/binds). */
  containerDir(id: string): string;
  /** Paths restricted because of where this manager keeps its own state. */
  ownPaths(): string[];
  /** The seccomp agent socket runc connects to (linux.seccomp.listenerPath). */
  seccompSocket(): string;
  /** The host pid of container id's init, once runc handed over its seccomp listener; undefined: unknown. */
  initPid?(id: string): number | undefined;
  /** Whether `start` may open runc's exec fifo in the launcher (ECI_NATIVE_START). */
  readonly nativeStart?: boolean;
  /** eci-setkey's path when it runs Docker's libnetwork-setkey hook (spec/docker-setkey.ts); undefined: Docker's own. */
  readonly setkeyHook?: string;
  /** Records the container paths of a container's volumes (setuid/setgid chmods are refused there). */
  setVolumePaths?(id: string, paths: string[]): void;
  /** Where container `id`'s emulated /proc files are served (undefined: no emulation on this host). */
  procfsDir?(id: string): string | undefined;
  /** Per-container /proc/sys and /sys files to put in place after create (undefined: none). */
  sysctlFiles?(id: string): { dir: string; files: { file: string; target: string }[] } | undefined;
  /** Puts a host mount over a path inside the container of `pid` (eci-helper bind-into). */
  bindInto?(pid: number, source: string, target: string): Promise<void>;
  /** bindInto for many files in one go (a target missing in the container is skipped). */
  bindIntoMany?(pid: number, pairs: readonly { source: string; target: string }[]): Promise<void>;
  /** Host-backed dirs for a system container's inner engine data (actors/manager/inner-data.ts). */
  innerDataDirs?(id: string, names: readonly string[]): { name: string; path: string; dev: bigint; ino: bigint }[];
  /** setdomainname(2) in the UTS namespace of process `pid` (Docker's --domainname, see utsSysctlsAsFields). */
  setDomainname?(pid: number, name: string): Promise<void>;
}

/** Writes an error where containerd/Docker read the runtime's failure reason (runc --log). */
export function logRuntimeError(cli: Pick<RuncCommandLine, 'log' | 'logFormat'>, msg: string): void {
  if (!cli.log) return;
  const time = new Date().toISOString();
  const line = cli.logFormat === 'json'
    ? JSON.stringify({ level: 'error', msg, time }) + '\n'
    : `time="${time}" level=error msg=${JSON.stringify(msg)}\n`;
  try {
    appendFileSync(cli.log, line);
  } catch {
    /* the log is advisory; stderr carries the message too */
  }
}

let held: Set<string> | undefined;
/** The capabilities eci itself holds (its bounding set), read once. */
function heldCapabilities(): Set<string> {
  if (!held) held = capsFromMask(/^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0');
  return held;
}

let hardLimits: Record<string, number> | undefined;
/** eci's own hard rlimits, read once (containers get at most these). */
function ownHardLimits(): Record<string, number> {
  if (!hardLimits) hardLimits = parseHardLimits(readFileSync('/proc/self/limits', 'utf8'));
  return hardLimits;
}

/** realpath + stat of a host path, or undefined when it does not exist. */
/** mountinfo.ts bindOrigin on this process's mount table (read only when a named volume asks). */
function volumeBindOrigin(path: string): string | null | undefined {
  return bindOrigin(parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')), path);
}

function resolveHostPath(p: string): Resolved | undefined {
  try {
    const path = realpathSync.native(p); // one realpath(3), not an lstat per path component
    const st = statSync(path, { bigint: true });
    return { path, dev: st.dev, ino: st.ino, isDir: st.isDirectory() };
  } catch {
    return undefined;
  }
}

/**
 * The container's image, for the engine-socket rule: Kubernetes-style engines annotate it; for
 * Docker it is in <data-root>/containers/<id>/config.v2.json, next to the hostname file it mounts.
 */
export function imageOf(spec: OciSpec, id: string): ImageInfo | undefined {
  const ann = (spec.annotations ?? {}) as Record<string, string>;
  const name = ann['io.kubernetes.cri.image-name'] ?? ann['org.opencontainers.image.ref.name'];
  if (name) return { name };
  const hostname = ((spec.mounts ?? []) as OciMount[]).find((m) => m.destination === '/etc/hostname' && m.source?.endsWith(`/containers/${id}/hostname`));
  if (!hostname?.source) return undefined;
  try {
    const cfg = JSON.parse(readFileSync(join(dirname(hostname.source), 'config.v2.json'), 'utf8')) as { Config?: { Image?: string }; Image?: string };
    return { name: cfg.Config?.Image, id: cfg.Image };
  } catch {
    return undefined;
  }
}

/** What eci wrote to a bundle, kept as a digest (the text itself is tens of KiB per container). */
function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The temporary file a config.json is written to before its rename over the original. */
function atomicTmp(path: string): string {
  return join(dirname(path), `.config.json.eci-${process.pid}-${Date.now()}`);
}

function writeAtomic(path: string, text: string): void {
  const mode = statSync(path).mode & 0o7777;
  const tmp = atomicTmp(path);
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

/** writeAtomic off the event loop (on a busy disk one write can take ms). */
async function writeAtomicAsync(path: string, text: string): Promise<void> {
  const mode = (await stat(path)).mode & 0o7777;
  const tmp = atomicTmp(path);
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
}

/** One launcher connection: a request, and for `spawn` replies, the child's exit status. */
export class RuntimeSession {
  private cli?: RuncCommandLine;
  private onExit?: (status: number) => Promise<ShimReply>;
  /** The launcher's final answer went out before its EXIT report (that report then gets none). */
  private answered = false;
  /** The EXIT report has come: the final answer is the report's. */
  private exited = false;

  /** `answerAhead`: writes a final answer that the launcher reads after its EXIT report, before that report arrives. */
  constructor(private host: RuntimeHost, private answerAhead?: (r: ShimReply) => void) {}

  private t0 = 0;
  private tLap = 0;

  /** ms since the previous lap (or the request), for the debug log's phases of a create. */
  private lap(): number {
    const now = performance.now();
    const ms = now - (this.tLap || this.t0);
    this.tLap = now;
    return +ms.toFixed(2);
  }

  async request(cwd: string, argv: string[]): Promise<ShimReply> {
    this.t0 = performance.now();
    try {
      this.cli = parseRuncArgs(argv);
      const cli = this.cli;
      const runcArgv = [this.host.runc, ...argv];
      switch (cli.command) {
        case 'create':
        case 'run':
          return await this.create(cli, cwd, runcArgv);
        case 'start':
          return await this.start(cli, runcArgv);
        case 'delete':
          return this.delete(cli, runcArgv);
        case 'exec':
          return this.exec(cli, cwd, runcArgv);
        default:
          // anything eci has no policy for yet goes to runc as it is.
          return { action: 'exec', argv: runcArgv };
      }
    } catch (e) {
      const msg = oneLine(e);
      if (!(e instanceof EciError)) this.host.log.error({ err: e, argv }, 'unexpected error handling a runtime call');
      if (this.cli) logRuntimeError(this.cli, msg);
      return { action: 'error', message: msg };
    }
  }

  /** runc's exit status; the answer to it, or undefined when the launcher got its final answer already. */
  async exit(status: number): Promise<ShimReply | undefined> {
    this.exited = true;
    if (!this.onExit) return this.answered ? undefined : { action: 'done', status };
    const t = performance.now();
    try {
      const r = await this.onExit(status);
      this.host.log.debug({ cmd: this.cli?.command, id: this.cli?.id, status, ms: +(performance.now() - t).toFixed(2), totalMs: +(performance.now() - this.t0).toFixed(2), answeredAhead: this.answered }, 'runtime call finished');
      return this.answered ? undefined : r;
    } catch (e) {
      this.host.log.error({ err: e }, 'error after runc exited');
      return this.answered ? undefined : { action: 'done', status };
    }
  }

  /** The final answer before runc's exit is reported (the launcher then exits with runc's status), unless that report has come. */
  private answerEarly(): void {
    if (this.exited || this.answered || !this.answerAhead) return;
    this.answered = true;
    this.answerAhead({ action: 'pass' });
  }

  /**
   * What the rootfs plan needs of the mount table: the one mount at the rootfs (statmount) where the
   * kernel can tell, else the whole table (a large file on a busy host: tens of ms per create).
   */
  private mountTableFor(rootPath: string): string {
    let real: string | undefined;
    try {
      real = realpathSync(rootPath);
    } catch { /* planRootfs says what is wrong with it */ }
    const one = real !== undefined ? this.host.mountInfoAt?.(real) : undefined;
    return one ?? readFileSync('/proc/self/mountinfo', 'utf8');
  }

  private need(cli: RuncCommandLine): string {
    if (!cli.id) throw new EciError('EUSAGE', `${cli.command}: missing container id`);
    return cli.id;
  }

  private async create(cli: RuncCommandLine, cwd: string, runcArgv: string[]): Promise<ShimReply> {
    const id = this.need(cli);
    const bundle = resolve(isAbsolute(cli.bundle ?? '') ? cli.bundle! : join(cwd || '/', cli.bundle ?? '.'));
    const configPath = join(bundle, 'config.json');
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (e) {
      throw new EciError('EBADBUNDLE', `bundle ${bundle}: cannot read config.json (${(e as NodeJS.ErrnoException).code})`);
    }
    const parsed = parseSpec(text, configPath);
    const phases: Record<string, number> = { read: this.lap() };
    // A delete of this id is answered once eci's mounts are down; its range, run dir and records follow ms
    // later. A create of the same id meanwhile (an engine restarting the container) waits for that, so it
    // neither fails as existing nor has its new run dir removed by the old release.
    const leaving = this.host.container(id);
    if (leaving?.isUnmounted) await leaving.released;
    if (existsSync(runcStateDir(cli.root, id)) || this.host.container(id)) {
      throw new EciError('EEXIST', `container "${id}" already exists`);
    }
    const settings = this.host.settings();
    const eci = settings.enhancedContainerIsolation.value;
    const systemInit = eci ? detectSystemInit(parsed, resolve(bundle, parsed.root!.path!)) : undefined;
    const checks: CheckContext = {
      id, bundle, pidFile: cli.pidFile && resolve(cwd || '/', cli.pidFile), isHostNamespace: (type, path) => this.host.isHostNamespace(type, path), image: eci ? imageOf(parsed, id) : undefined, resolve: resolveHostPath, bindOrigin: volumeBindOrigin, decisions: [], systemInit,
      // Turned off, eci still refuses host namespaces but leaves mounts to runc.
      mountPolicy: eci ? {
        restricted: [...BUILTIN_RESTRICTED, ...this.host.ownPaths(), ...settings.restrictedPaths],
        shared: settings.fileSharing,
        engineSockets: settings.engineSockets,
        trustedImages: settings.dockerSocketMount.imageList.images,
        readOnlySystemFiles: settings.readOnlySystemFiles,
      } : undefined,
      // Turned off, joining any namespace is runc's business (no user namespace to share).
      namespaceOwner: eci && this.host.namespaceOwner ? (type, path) => this.host.namespaceOwner!(type, path) : undefined,
    };
    // The checked spec: bind decisions index its mounts (a systemd container's engine binds of host cgroups are gone).
    const spec = runSteps(CHECK_STEPS, parsed, checks);
    // The administrator turned eci off: plain runc, nothing rewritten.
    if (!eci) return { action: 'exec', argv: runcArgv };
    const decisions = checks.decisions;
    phases.checks = this.lap();
    const rootPath = resolve(bundle, spec.root!.path!);
    const rootfs = planRootfs(rootPath, this.mountTableFor(rootPath));
    phases.plan = this.lap();
    const binds: BindPlan[] = [];
    for (const d of decisions) {
      if (d.kind === 'engine-file') continue;
      binds.push({
        index: d.index, source: d.resolved.path, target: join(this.host.containerDir(id), 'binds', String(binds.length)),
        dev: d.resolved.dev, ino: d.resolved.ino, rdonly: d.readonly,
        nosuid: !settings.volumes.allowSuid, nodev: !settings.volumes.allowDevices,
      });
    }

    // A system container's inner engine data gets host-backed dirs, idmapped like volumes.
    const inner = this.host.innerDataDirs ? innerDataTargets(spec) : [];
    const dataDirs = inner.length ? this.host.innerDataDirs!(id, inner.map((t) => t.name)) : [];
    const specMounts = (spec.mounts ?? []) as OciMount[];
    dataDirs.forEach((d, i) => binds.push({
      index: specMounts.length + i, source: d.path, target: join(this.host.containerDir(id), 'binds', String(binds.length)),
      dev: d.dev, ino: d.ino, rdonly: false, nosuid: true, nodev: true,
    }));
    const withData = withMounts(spec, innerDataMounts(inner, dataDirs.map((d) => d.path)));

    // An inner engine (dockerd, containerd) gets systemd's cgroup view and, after create, its controllers' cgroups too.
    const system = systemWorkload(spec);
    const engineCgroups = system && !systemInit ? { cgroups: hostCgroupLayout() } : undefined;
    const group = checks.joins;
    const actor = this.host.createContainer(id, bundle, cli.root, { rootfs, binds }, { join: group?.containers[0] });
    actor.createInFlight = true;
    const snap = await actor.ready();
    phases.mapped = this.lap();
    if (!snap.matches('mounted')) {
      await actor.released;
      throw new EciError('ECREATE', `cannot create container ${id}: ${snap.context.reason ?? 'failed'}`);
    }
    const ctx = snap.context;
    const procfs = emulatedProcMounts(spec, this.host.procfsDir?.(id));
    let rewritten: OciSpec;
    try {
      rewritten = runSteps(REWRITE_STEPS, withData, {
        id, uid: ctx.uid!, gid: ctx.gid!, rootfs: ctx.rootfs!, binds, procMounts: procfs, system, groupUserns: group?.userns, engineCgroups,
        heldCapabilities: heldCapabilities(), hardLimits: ownHardLimits(), seccompSocket: this.host.seccompSocket(), setkeyHook: this.host.setkeyHook,
        createRules: needsCreateRules({
          rootfsWrites: rootfs.kind === 'overlay' ? rootfs.upper : rootfs.source,
          rootfsReadonly: spec.root?.readonly === true,
          volumes: decisions.flatMap((d) => (d.kind === 'volume' ? [{ readonly: d.readonly, isDir: d.resolved.isDir }] : [])),
        }),
        systemInit,
      });
    } catch (e) {
      // A refused rewrite gives back the range and the mounts taken for it.
      actor.send({ type: 'runc.failed', reason: oneLine(e) });
      await actor.released;
      throw e;
    }
    phases.rewrite = this.lap();
    const mounts = (withData.mounts ?? []) as OciMount[];
    const sysctl = this.host.sysctlFiles?.(id);
    const sysctlTargets = (sysctl?.files ?? []).map((f) => ({ source: join(sysctl!.dir, f.file), target: f.target }));
    actor.protectedPaths = [
      ...sysctlTargets.map((t) => t.target),
      ...procfs.map((m) => m.destination),
      ...binds.map((b) => mounts[b.index].destination),
      ...((spec.linux?.maskedPaths ?? []) as string[]),
      ...((spec.linux?.readonlyPaths ?? []) as string[]),
    ];
    this.host.setVolumePaths?.(id, binds.map((b) => mounts[b.index].destination));
    actor.releaseBesideDelete = !((spec.hooks as { poststop?: unknown[] } | undefined)?.poststop?.length);
    // Restart-safety: no container runs with a range the store does not hold yet (nor with a lost one).
    const unrecorded = await this.host.rangeRecorded?.(id);
    if (unrecorded !== undefined) {
      actor.send({ type: 'runc.failed', reason: unrecorded });
      await actor.released;
      throw new EciError('ECREATE', `cannot create container ${id}: ${unrecorded}`);
    }
    phases.recorded = this.lap();
    if (cli.command === 'run') {
      // runc run starts the process at once: the engine's path must show the rootfs before.
      const noView = await actor.hostViewMounted();
      if (noView !== undefined) {
        actor.send({ type: 'runc.failed', reason: noView });
        await actor.released;
        throw new EciError('ECREATE', `cannot create container ${id}: ${noView}`);
      }
    }
    const written = JSON.stringify(rewritten);
    try {
      writeAtomic(configPath, written);
      actor.bundleConfig = { path: configPath, original: text, written: digest(written) };
    } catch (e) {
      actor.send({ type: 'runc.failed', reason: `cannot write ${configPath}: ${(e as Error).message}` });
      await actor.released;
      throw new EciError('EBADBUNDLE', `cannot write ${configPath}: ${(e as NodeJS.ErrnoException).code}`);
    }
    if (cli.command === 'run') {
      // runc run creates and starts in one go; eci learns only when it ends.
      actor.send({ type: 'runc.created' });
      actor.send({ type: 'start' });
      actor.createInFlight = false; // from here on runc's container is its, whatever deletes it
    }
    const afterRunc = async (status: number): Promise<ShimReply> => {
      if (cli.command === 'create' && status === 0) {
        // The host view was mounted beside runc create: the engine is not told of the container before it is up.
        const noView = await actor.hostViewMounted();
        if (noView !== undefined) return await this.failCreated(cli, id, actor, configPath, text, noView);
        if (systemInit) this.prepareSystemInit(id, cli.root, ctx.uid!.hostID, ctx.gid!.hostID, systemInit);
        else if (engineCgroups) this.delegateEngineCgroups(id, cli.root, ctx.uid!.hostID, ctx.gid!.hostID);
        // Not answered as created before the fd-holder keeps its notify fd (vetting survives a manager crash).
        await this.host.notifyFdHeld?.(id);
        actor.send({ type: 'runc.created' });
        const views = this.injectSysctlViews(id, cli.root, sysctlTargets, (rewritten as { domainname?: string }).domainname);
        // Answered now; start waits for the views (the engine's work in between hides them).
        if (this.host.startGate) this.host.startGate.hold(id, views);
        else await views;
        return { action: 'done', status };
      }
      if (status !== 0 && cli.command === 'create') {
        writeAtomic(configPath, text); // give the engine its bundle back as it was
        actor.send({ type: 'runc.failed', reason: `runc create exited with status ${status}` });
        await actor.released;
        return { action: 'done', status };
      }
      // run: finished (or detached). Whatever runc no longer knows is gone.
      if (!existsSync(runcStateDir(cli.root, id))) {
        writeAtomic(configPath, text);
        actor.send({ type: 'delete' });
        await actor.released;
      }
      return { action: 'done', status };
    };
    this.onExit = (status) => afterRunc(status).finally(() => { actor.createInFlight = false; });
    phases.write = this.lap();
    this.host.log.debug({ cmd: cli.command, id, ms: +(performance.now() - this.t0).toFixed(2), phases }, 'create prepared');
    return { action: 'spawn', argv: runcArgv };
  }

  /**
   * runc created the container but eci cannot finish it (its host view failed): as for a failed runc
   * create, nothing is left: runc's container (with runc's own root), config.json's rewrite, the
   * range and the mounts; the engine gets one line and a non-zero exit.
   */
  private async failCreated(cli: RuncCommandLine, id: string, actor: ContainerActor, configPath: string, text: string, reason: string): Promise<ShimReply> {
    const argv = [...(cli.root ? ['--root', cli.root] : []), 'delete', '-f', id];
    const deleted = await new Promise<string | undefined>((res) => {
      execFile(this.host.runc, argv, { timeout: 30_000 }, (err, _out, stderr) => res(err ? oneLine(stderr || err.message) : undefined));
    });
    if (deleted !== undefined) this.host.log.error({ id, err: deleted }, 'runc delete of a container whose create failed');
    try {
      writeAtomic(configPath, text);
    } catch (e) {
      this.host.log.error({ id, err: oneLine(e) }, 'cannot give the bundle its config.json back');
    }
    actor.send({ type: 'runc.failed', reason });
    await actor.released;
    const msg = `cannot create container ${id}: ${reason}`;
    logRuntimeError(cli, msg);
    return { action: 'error', message: msg };
  }

  /** After create, before start: an inner engine's runc makes its containers' cgroups below the container's own. */
  private delegateEngineCgroups(id: string, root: string | undefined, uid: number, gid: number): void {
    try {
      const delegated = delegateCgroups(runcStateDir(root, id), uid, gid, { controllers: true });
      this.host.log.info({ id, cgroups: delegated.map((d) => d.dir) }, 'inner engine container: cgroups delegated');
    } catch (e) {
      this.host.log.warn({ id, err: oneLine(e) }, 'inner engine container: cgroups not delegated');
    }
  }

  /**
   * After create, before start (systemd waits on runc's exec fifo): the container's cgroup subtree
   * becomes its root's, and `runc kill` with SIGTERM will halt systemd. A failure leaves systemd to
   * report what it lacks; the container itself is unchanged.
   */
  private prepareSystemInit(id: string, root: string | undefined, uid: number, gid: number, init: SystemInit): void {
    const dir = runcStateDir(root, id);
    try {
      writeStopSignal(dir, SYSTEMD_STOP_SIGNAL);
    } catch (e) {
      this.host.log.warn({ id, err: oneLine(e) }, 'systemd container: no stop signal (docker stop will end at its SIGKILL)');
    }
    try {
      const delegated = delegateCgroups(dir, uid, gid);
      this.host.log.info({ id, container: init.container, cgroups: delegated.map((d) => d.dir) }, 'systemd container: cgroups delegated, stop signal SIGRTMIN+3');
    } catch (e) {
      this.host.log.warn({ id, err: oneLine(e) }, 'systemd container: cgroups not delegated');
    }
  }

  /**
   * After create, before start: put eci's per-container sysctl files over /proc/sys (runc refuses
   * those bind targets). A view that cannot be put in place leaves the kernel's read-only file.
   */
  private async injectSysctlViews(id: string, root: string | undefined, targets: { source: string; target: string }[], domainname?: string): Promise<void> {
    if ((!targets.length || !this.host.bindInto) && !domainname) return;
    const pid = runcInitPid(root, id);
    if (!pid) return; // no state: nothing to inject into
    if (domainname && this.host.setDomainname)
      await this.host.setDomainname(pid, domainname).catch((e) => this.host.log.warn({ id, domainname, err: (e as Error).message }, 'domainname not set'));
    if (!targets.length) return;
    if (this.host.bindIntoMany) {
      await this.host.bindIntoMany(pid, targets).catch((e) => this.host.log.warn({ id, err: (e as Error).message }, 'sysctl views not (all) injected'));
      return;
    }
    if (!this.host.bindInto) return;
    for (const t of targets) {
      await this.host.bindInto(pid, t.source, t.target).catch((e) => this.host.log.warn({ id, target: t.target, err: (e as Error).message }, 'sysctl view not injected'));
    }
  }

  /**
   * exec: the engine's --process file may ask for rlimits above eci's own (Podman's nofile
   * 1048576), which runc cannot set inside the user namespace. runc gets a clamped copy (the
   * engine's file is left as it is); the copy is removed when runc exits.
   */
  private exec(cli: RuncCommandLine, cwd: string, runcArgv: string[]): ShimReply {
    const at = cli.args.findIndex((a) => a === '--process' || a === '-p' || a === '-process' || a.startsWith('--process=') || a.startsWith('-p='));
    if (at < 0) return { action: 'exec', argv: runcArgv };
    const inline = cli.args[at].includes('=');
    const file = inline ? cli.args[at].slice(cli.args[at].indexOf('=') + 1) : cli.args[at + 1];
    if (!file) return { action: 'exec', argv: runcArgv };
    const path = isAbsolute(file) ? file : join(cwd || '/', file);
    let proc: Record<string, unknown>;
    try {
      proc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch {
      return { action: 'exec', argv: runcArgv }; // runc reports an unreadable or bad file itself
    }
    if (!proc || typeof proc !== 'object' || !Array.isArray(proc.rlimits)) return { action: 'exec', argv: runcArgv };
    const copy = join(dirname(path), `.eci-process-${process.pid}-${Date.now()}.json`);
    writeFileSync(copy, JSON.stringify(clampProcessRlimits(proc, ownHardLimits())), { mode: 0o600 });
    const args = [...cli.args];
    if (inline) args[at] = `--process=${copy}`;
    else args[at + 1] = copy;
    this.onExit = async (status) => {
      rmSync(copy, { force: true });
      return { action: 'done', status };
    };
    return { action: 'spawn', argv: [this.host.runc, ...cli.global, cli.command!, ...args] };
  }

  private async start(cli: RuncCommandLine, runcArgv: string[]): Promise<ShimReply> {
    const id = this.need(cli);
    await this.host.startGate?.wait(id); // what create left to do before the process runs
    this.onExit = async (status) => {
      const actor = this.host.container(id);
      if (status === 0 && actor) {
        actor.send({ type: 'runc.created' }); // no-op if already known; covers a lost create report
        actor.send({ type: 'start' });
      }
      return { action: 'done', status };
    };
    // The report only moves the record to running (nothing the engine waits on): no second round trip.
    // With the init's pid known, the launcher does runc start's work itself (runc's own start is its fallback).
    const pid = this.host.nativeStart ? this.host.initPid?.(id) : undefined;
    if (pid && cli.args.length === 1) return { action: 'fifo', fifo: `${runcStateDir(cli.root, id)}/exec.fifo`, pid, argv: runcArgv };
    return { action: 'tell', argv: runcArgv };
  }

  /**
   * Once runc has forgotten the container, its bundle's config.json is given back as it was before eci's
   * rewrite (runc never changes a bundle; a bundle created again must not carry eci's rewrite), unless
   * someone wrote the file since. Unknown after a manager restart (the original is kept in memory only).
   */
  private async giveBundleBack(actor: ContainerActor): Promise<void> {
    const b = actor.bundleConfig;
    if (!b) return;
    actor.bundleConfig = undefined;
    try {
      if (digest(await readFile(b.path, 'utf8')) === b.written) await writeAtomicAsync(b.path, b.original);
    } catch (e) {
      this.host.log.warn({ id: actor.id, path: b.path, err: oneLine(e) }, 'bundle config.json not given back');
    }
  }

  private delete(cli: RuncCommandLine, runcArgv: string[]): ShimReply {
    const id = this.need(cli);
    // Nothing of eci's to wait for (engines delete twice; the second finds the mounts gone): runc alone.
    const early = this.host.container(id);
    // A container whose create is under way is not this delete's (see createInFlight): runc alone
    // answers it, as it would for a container it does not know yet.
    if (!early || early.isUnmounted || early.createInFlight) return { action: 'exec', argv: runcArgv };
    // No process of it is left (its init and pid namespace are gone): runc delete only forgets it, so
    // eci's release runs beside runc instead of after it, unless a poststop hook, which runc delete
    // runs, could still read the rootfs. Decided once the spawn answer is out (runc's state is tens of
    // KiB of JSON: its read then overlaps runc's start-up). runc delete reads its state dir, never the
    // bundle, so the bundle is given back beside it too, and the launcher gets its final answer once
    // eci's mounts are down and the bundle is back, even before it reports runc's exit.
    let beside: Promise<unknown> | undefined;
    if (early.releaseBesideDelete) setImmediate(() => {
      if (early.state !== 'running' && early.state !== 'mounted') return;
      if (this.exited || !runcContainerEmpty(cli.root, id)) return; // after runc's exit: its aftermath decides (below)
      early.send({ type: 'delete' });
      beside = Promise.all([early.unmounted, this.giveBundleBack(early)]);
      void beside.then(() => this.answerEarly());
    });
    this.onExit = async (status) => {
      // The actor this delete was for: beside runc, its release may be over and it gone from the table.
      const forgotten = !existsSync(runcStateDir(cli.root, id));
      if (beside || forgotten) {
        early.send({ type: 'delete' }); // no-op when sent already
        // What the engine depends on (its rootfs path, its upper dir) is free once eci's mounts are
        // down; the range, the run dir and the records follow after the answer (actor.released).
        await Promise.all([beside, forgotten && this.giveBundleBack(early), early.unmounted]);
      }
      return { action: 'done', status };
    };
    return { action: 'spawn', argv: runcArgv };
  }
}
