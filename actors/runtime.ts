// What the manager does for each runc verb the launcher forwards. `create` is the one that matters:
// check the spec, get a range from the allocator, map the rootfs, rewrite config.json, then let
// runc run; anything that fails leaves nothing behind.
import { appendFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { EciError, oneLine } from './errors.ts';
import { parseRuncArgs, runcStateDir, type RuncCommandLine } from './runc/cli.ts';
import { applyUserNamespace, checkNamespaces, clampIdSysctls, parseSpec, withRootPath, type OciSpec } from './runc/spec.ts';
import { planRootfs, type RootfsPlan } from './rootfs.ts';
import type { ContainerActor } from './container.actor.ts';
import type { ShimReply } from './shim-protocol.ts';

export interface RuntimeHost {
  runc: string;
  log: Logger;
  container(id: string): ContainerActor | undefined;
  /** Starts the actor for a new container; the rootfs is mapped following `plan`. */
  createContainer(id: string, bundle: string, runcRoot: string | undefined, plan: RootfsPlan): ContainerActor;
  isHostNamespace(type: string, path: string): boolean;
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

function writeAtomic(path: string, text: string): void {
  const mode = statSync(path).mode & 0o7777;
  const tmp = join(dirname(path), `.config.json.eci-${process.pid}-${Date.now()}`);
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

/** One launcher connection: a request, and for `spawn` replies, the child's exit status. */
export class RuntimeSession {
  private cli?: RuncCommandLine;
  private onExit?: (status: number) => Promise<ShimReply>;

  constructor(private host: RuntimeHost) {}

  async request(cwd: string, argv: string[]): Promise<ShimReply> {
    try {
      this.cli = parseRuncArgs(argv);
      const cli = this.cli;
      const runcArgv = [this.host.runc, ...argv];
      switch (cli.command) {
        case 'create':
        case 'run':
          return await this.create(cli, cwd, runcArgv);
        case 'start':
          return this.start(cli, runcArgv);
        case 'delete':
          return this.delete(cli, runcArgv);
        default:
          // exec and anything eci has no policy for yet go to runc as they are.
          return { action: 'exec', argv: runcArgv };
      }
    } catch (e) {
      const msg = oneLine(e);
      if (!(e instanceof EciError)) this.host.log.error({ err: e, argv }, 'unexpected error handling a runtime call');
      if (this.cli) logRuntimeError(this.cli, msg);
      return { action: 'error', message: msg };
    }
  }

  async exit(status: number): Promise<ShimReply> {
    if (!this.onExit) return { action: 'done', status };
    try {
      return await this.onExit(status);
    } catch (e) {
      this.host.log.error({ err: e }, 'error after runc exited');
      return { action: 'done', status };
    }
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
    const spec = parseSpec(text, configPath);
    checkNamespaces(spec, this.host.isHostNamespace);
    if (existsSync(runcStateDir(cli.root, id)) || this.host.container(id)) {
      throw new EciError('EEXIST', `container "${id}" already exists`);
    }
    const plan = planRootfs(resolve(bundle, spec.root!.path!));

    const actor = this.host.createContainer(id, bundle, cli.root, plan);
    const snap = await actor.ready();
    if (!snap.matches('mounted')) {
      await actor.released;
      throw new EciError('ECREATE', `cannot create container ${id}: ${snap.context.reason ?? 'failed'}`);
    }
    const ctx = snap.context;
    const rewritten: OciSpec = withRootPath(clampIdSysctls(applyUserNamespace(spec, ctx.uid!, ctx.gid!), ctx.gid!.size), ctx.rootfs!);
    try {
      writeAtomic(configPath, JSON.stringify(rewritten));
    } catch (e) {
      actor.send({ type: 'runc.failed', reason: `cannot write ${configPath}: ${(e as Error).message}` });
      await actor.released;
      throw new EciError('EBADBUNDLE', `cannot write ${configPath}: ${(e as NodeJS.ErrnoException).code}`);
    }
    if (cli.command === 'run') {
      // runc run creates and starts in one go; eci learns only when it ends.
      actor.send({ type: 'runc.created' });
      actor.send({ type: 'start' });
    }
    this.onExit = async (status) => {
      if (cli.command === 'create' && status === 0) {
        actor.send({ type: 'runc.created' });
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
    return { action: 'spawn', argv: runcArgv };
  }

  private start(cli: RuncCommandLine, runcArgv: string[]): ShimReply {
    const id = this.need(cli);
    this.onExit = async (status) => {
      const actor = this.host.container(id);
      if (status === 0 && actor) {
        actor.send({ type: 'runc.created' }); // no-op if already known; covers a lost create report
        actor.send({ type: 'start' });
      }
      return { action: 'done', status };
    };
    return { action: 'spawn', argv: runcArgv };
  }

  private delete(cli: RuncCommandLine, runcArgv: string[]): ShimReply {
    const id = this.need(cli);
    this.onExit = async (status) => {
      const actor = this.host.container(id);
      if (actor && !existsSync(runcStateDir(cli.root, id))) {
        actor.send({ type: 'delete' });
        await actor.released;
      }
      return { action: 'done', status };
    };
    return { action: 'spawn', argv: runcArgv };
  }
}
