// One `eci run` client's connection, served by the manager (bin/eci.ts hands it to the control
// server; the manager does not import cli/). The client (native/cmd/eci-run.c) sends its argv,
// environment and pid; the manager parses the flags, makes the bundle and answers with the
// `eci-runc run` command line, which the client runs with its own stdio and terminal (so runc
// stays in the user's session, and a manager restart does not touch a running container); the
// client reports how it ended and the manager removes everything. A hangup (SIGHUP reported by the
// client, or the client's connection lost) kills a container still running HANGUP_GRACE_MS later.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EciError, oneLine } from '../../actors/errors.ts';
import type { ManagerConfig } from '../../actors/config.ts';
import type { RunCalls } from '../../actors/manager/control-server.ts';
import type { ShimFrame, ShimReply } from '../../actors/shim-protocol.ts';
import { startLauncher } from '../../native/index.ts';
import { HELP } from '../help.ts';
import { parseRunArgs } from './flags.ts';
import { finishRun, HANGUP_GRACE_MS, prepareRun, type PreparedRun, type RunEnd, type RunPaths } from './run.ts';
import type { RunOptions } from './flags.ts';

const SIGHUP = 1;

/** Docker's code for "the container could not be run"; the message is one line as elsewhere. */
function failure(e: unknown, log: Logger): ShimReply {
  if (e instanceof EciError) return { action: 'fail', text: `eci: ${oneLine(e)}${e.hint ? `\nhint: ${e.hint}` : ''}\n`, status: 125 };
  log.error({ err: e }, 'eci run failed');
  return { action: 'fail', text: `eci: unexpected error (a bug): ${(e as Error)?.stack ?? String(e)}\n`, status: 1 };
}

/** What a session does to the world (tests give fakes). */
export interface RunEffects {
  prepare(opts: RunOptions, owner: number): Promise<PreparedRun>;
  finish(run: PreparedRun, end: RunEnd): Promise<number>;
  /** Kills the run's container (runc kill KILL through the launcher). */
  kill(run: PreparedRun): void;
  /** Whether the bundle still belongs to client `owner` (not swept and made again under the same name). */
  owned(run: PreparedRun, owner: number): boolean;
  graceMs: number;
}

export function runEffects(config: ManagerConfig, paths: RunPaths): RunEffects {
  return {
    prepare: (opts, owner) => prepareRun(config, opts, owner, paths),
    finish: (run, end) => finishRun(config, run, end, paths),
    kill: (run) => startLauncher(['--root', run.runcRoot, 'kill', run.id, 'KILL'], { socket: config.socket, launcher: paths.launcher }),
    owned: (run, owner) => {
      try {
        return Number(readFileSync(join(run.bundle, 'owner'), 'utf8')) === owner;
      } catch {
        return false;
      }
    },
    graceMs: HANGUP_GRACE_MS,
  };
}

export class RunSession implements RunCalls {
  private run?: PreparedRun;
  private owner = 0;
  private finished = false;
  private gone = false;
  private hangup?: NodeJS.Timeout;

  constructor(private readonly fx: RunEffects, private readonly log: Logger) {}

  async start(f: Extract<ShimFrame, { kind: 'run' }>): Promise<ShimReply> {
    if (this.run || this.finished) return { action: 'fail', text: 'eci: one run per connection\n', status: 125 };
    let stdin = false;
    try {
      const opts = parseRunArgs(f.argv, f.env);
      if (opts.help) {
        this.finished = true;
        return { action: 'print', text: `${HELP.run}\n`, status: 0 };
      }
      stdin = opts.interactive; // else /dev/null, as docker run without -i
      this.owner = f.pid;
      this.run = await this.fx.prepare(opts, f.pid);
    } catch (e) {
      this.finished = true;
      return failure(e, this.log);
    }
    // The client went away while the bundle was made: nothing ran, nothing is left.
    if (this.gone) return this.exit({ kind: 'run-exit', status: 128 + SIGHUP, started: false, stderrTail: '' });
    return { action: 'start', stdin, argv: this.run.argv };
  }

  async exit(f: Extract<ShimFrame, { kind: 'run-exit' }>): Promise<ShimReply> {
    const run = this.run;
    if (!run || this.finished) return { action: 'fail', text: 'eci: no run to end on this connection\n', status: 125 };
    this.finished = true;
    clearTimeout(this.hangup);
    try {
      return { action: 'done', status: await this.fx.finish(run, f) };
    } catch (e) {
      return failure(e, this.log);
    }
  }

  signal(signo: number): void {
    if (signo === SIGHUP) this.armHangup();
  }

  /**
   * The connection ended. A client killed while its container runs leaves the bundle to the next
   * run's sweep (its owner pid is gone), as a killed `eci run` always did; the container is treated
   * as after a hangup: nobody can reach it any more.
   */
  closed(): void {
    this.gone = true;
    if (!this.finished) this.armHangup();
  }

  // Nobody can reach the container any more and eci run cannot detach, so a container that
  // outlives the hangup by HANGUP_GRACE_MS is killed.
  private armHangup(): void {
    const run = this.run;
    if (!run || this.finished || this.hangup) return;
    this.hangup = setTimeout(() => {
      if (!this.finished && this.fx.owned(run, this.owner)) this.fx.kill(run);
    }, this.fx.graceMs);
    this.hangup.unref?.();
  }
}

/** The control server's `run` handler. */
export const runSessions = (config: ManagerConfig, paths: RunPaths, log: Logger) => (): RunCalls => new RunSession(runEffects(config, paths), log);
