// The eci command line. Runs on Node (through bin/eci, compiled) and on Deno (deno run -A bin/eci.ts).
import process from 'node:process';
import { EciError, oneLine } from '../actors/errors.ts';
import { configFromEnv } from '../actors/config.ts';
import { control } from '../cli/control-client.ts';
import { HELP } from '../cli/help.ts';
import type { ContainerView } from '../actors/system.ts';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = '0.1.0';


function help(cmd: string): never {
  console.log(HELP[cmd] ?? HELP['']);
  process.exit(0);
}

async function daemon(): Promise<void> {
  const { pino } = await import('pino');
  const { Manager } = await import('../actors/system.ts');
  const native = await import('../native/index.ts');
  native.cloexecInherited(); // nothing the daemon inherited goes on to its children
  const config = configFromEnv();
  // The short EEVDF slice is the vetted call's path's alone (performer, spares, watcher thread): on the main
  // thread (and so nats-server and the fd-holder) its wake-ups preempted that path (mount row, busy:
  // +0.65 -> +0.55 ms p50 without it, 6 of 7 alternating pairs; start unchanged).
  const log = pino({ level: config.logLevel, base: { pid: process.pid, name: 'eci' } });
  // eci run's sessions (cli/run/) are handed in: the manager does not import cli/.
  const { runSessions } = await import('../cli/run/session.ts');
  const m = new Manager(config, log, native, { run: runSessions(config, { launcher: join(repoDir(), 'bin', 'eci-runc') }, log) });
  const { BusError } = await import('../bus/errors.ts');
  try {
    await m.start();
  } catch (e) {
    // A bus the manager may not use (no credentials, no TLS) or cannot reach: one line, not a stack.
    if (e instanceof BusError) throw new EciError(e.code, e.message, { cause: e });
    throw e;
  }
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ sig }, 'stopping');
    try {
      await m.stop();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

function fmtRange(r?: { hostID: number; size: number }): string {
  return r ? `0 ${r.hostID} ${r.size}` : '-';
}

async function ps(args: string[]): Promise<void> {
  const config = configFromEnv();
  const r = await control<{ ok: boolean; containers: ContainerView[]; error?: string }>(config.socket, { op: 'ps' });
  if (!r.ok) throw new EciError('EPS', r.error ?? 'ps failed');
  if (args.includes('--json')) {
    console.log(JSON.stringify(r.containers, null, 2));
    return;
  }
  // GROUP: the containers sharing one user namespace and range (manager/groups.ts) show the same key.
  const rows = [['CONTAINER', 'STATE', 'UID MAP', 'GID MAP', 'GROUP', 'CREATED'],
    ...r.containers.map((c) => [c.id.slice(0, 12), c.state, fmtRange(c.uid), fmtRange(c.gid), c.group ? c.group.slice(0, 12) : '-', c.created])];
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd());
}

async function settings(args: string[]): Promise<void> {
  const { DEFAULT_SETTINGS, parseSettings } = await import('../actors/settings.ts');
  const { readFileSync } = await import('node:fs');
  if (args[0] === 'defaults') return void console.log(JSON.stringify(DEFAULT_SETTINGS, null, 2));
  if (args[0] !== 'validate') throw new EciError('EUSAGE', "usage: eci settings validate [FILE] | eci settings defaults");
  const file = args[1] ?? configFromEnv().settingsPath;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new EciError('ESETTINGS', `${file}: cannot read (${(e as NodeJS.ErrnoException).code})`);
  }
  const s = parseSettings(text, file);
  console.log(`${file}: valid`);
  console.log(JSON.stringify(s, null, 2));
}

async function servicesCmd(args: string[]): Promise<void> {
  const { services } = await import('../cli/services.ts');
  const config = configFromEnv();
  let name: string | undefined;
  let json = false;
  for (const a of args) {
    if (a === '--json') json = true;
    else if (a.startsWith('-')) throw new EciError('EUSAGE', `services: unknown flag ${a}; see 'eci services --help'`);
    else if (name === undefined && /^[A-Za-z0-9_-]+$/.test(a)) name = a;
    else throw new EciError('EUSAGE', `services: unexpected argument ${JSON.stringify(a)}; see 'eci services --help'`);
  }
  const { cliBus } = await import('../cli/bus-connect.ts');
  await services({ bus: cliBus(config), json, name, out: (l) => console.log(l) });
}

async function eventsCmd(args: string[]): Promise<void> {
  const { events } = await import('../cli/events.ts');
  const config = configFromEnv();
  const { cliBus } = await import('../cli/bus-connect.ts');
  const o: Parameters<typeof events>[0] = {
    bus: cliBus(config), follow: false, json: false, out: (l) => console.log(l),
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new EciError('EUSAGE', `${a} needs a value`);
      return v;
    };
    if (a === '--follow' || a === '-f') o.follow = true;
    else if (a === '--json') o.json = true;
    else if (a === '--since') o.since = val();
    else if (a === '--seq') {
      const n = Number(val());
      if (!Number.isInteger(n) || n < 1) throw new EciError('EUSAGE', '--seq: expected a positive integer');
      o.seq = n;
    } else if (a === '--container') o.container = val();
    else if (a === '--kind') o.kind = val();
    else throw new EciError('EUSAGE', `events: unknown flag ${a}; see 'eci events --help'`);
  }
  await events(o);
}

async function checkCmd(args: string[]): Promise<void> {
  const { runChecks, formatChecks } = await import('../cli/check.ts');
  const o: Parameters<typeof runChecks>[0] = { docker: '/usr/bin/docker', host: process.env.DOCKER_HOST, runtime: 'eci', image: '', out: (l: string) => console.log(l) };
  let engine: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const v = args[i + 1];
    if (v === undefined && args[i].startsWith('--')) throw new EciError('EUSAGE', `${args[i]} needs a value`);
    if (args[i] === '--engine') engine = args[++i];
    else if (args[i] === '--docker') o.docker = args[++i];
    else if (args[i] === '--host') o.host = args[++i];
    else if (args[i] === '--runtime') o.runtime = args[++i];
    else if (args[i] === '--image') o.image = args[++i];
    else throw new EciError('EUSAGE', `check: unknown flag ${args[i]}; see 'eci check --help'`);
  }
  if (engine !== undefined && engine !== 'docker' && engine !== 'eci') throw new EciError('EUSAGE', `check: --engine must be docker or eci, not ${JSON.stringify(engine)}`);
  const { dockerReachable } = await import('../cli/check.ts');
  o.engine = (engine as 'docker' | 'eci' | undefined) ?? ((await dockerReachable(o)) ? 'docker' : 'eci');
  if (o.engine === 'eci') {
    // The same runtime as this process: Deno runs bin/eci.ts; else bin/eci, whose `run` starts no Node.
    const underDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;
    const self = underDeno ? [process.execPath, 'run', '-A', join(repoDir(), 'bin', 'eci.ts')] : [join(repoDir(), 'bin', 'eci')];
    o.eci = { argv: [...self, 'run'], env: { ...process.env } as Record<string, string> };
  }
  if (!o.image) o.image = o.engine === 'eci' ? 'busybox' : 'eci-busybox';
  // On stderr: stdout stays the table alone.
  console.error(`engine: ${o.engine === 'eci' ? 'eci run (no engine)' : `docker (${o.host ?? 'default host'}, runtime ${o.runtime})`}`);
  const r = await runChecks(o);
  for (const l of formatChecks(r)) console.log(l);
  if (r.some((x) => !x.pass)) process.exit(1);
}

/** This checkout's root (bin/eci.ts under Deno, dist/bin/eci.js under Node). */
function repoDir(): string {
  const here = fileURLToPath(new URL('.', (import.meta as { url: string }).url));
  return here.replace(/\/dist\/bin\/?$|\/bin\/?$/, '');
}

/** Signals eci run's client gets from us as it would from a terminal (the client forwards them on). */
const RUN_FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/**
 * `eci run` is served by the manager through its C client (native/cmd/eci-run.c), which bin/eci
 * execs straight away; this path (Deno, or `node bin/eci run`) runs the same client as a child.
 */
async function runCmd(args: string[]): Promise<void> {
  const { spawn } = await import('node:child_process');
  const { constants } = await import('node:os');
  const client = join(repoDir(), 'native', 'bin', 'eci-run');
  const child = spawn(client, ['run', ...args], { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  for (const s of RUN_FORWARDED) process.on(s, forward);
  const status = await new Promise<number>((res) => {
    child.once('error', (e) => {
      console.error(`eci: cannot run ${client}: ${e.message} (build it: npm run build:native)`);
      res(125);
    });
    child.once('close', (code, sig) => res(code ?? 128 + (sig ? constants.signals[sig] ?? 0 : 0)));
  });
  process.exit(status);
}

async function imageCmd(args: string[]): Promise<void> {
  const { ImageStore, parseImageRef, refString } = await import('../cli/images/store.ts');
  const store = new ImageStore(configFromEnv().stateDir);
  const [sub, ...rest] = args;
  if (sub === 'import') {
    if (rest[0] === '--busybox') {
      if (rest.length > 1) throw new EciError('EUSAGE', 'image import --busybox takes no other argument');
      const { ensureBusybox } = await import('../cli/images/busybox.ts');
      const rec = await ensureBusybox(store);
      return void console.log(`${rec.name}:${rec.tag}`);
    }
    if (rest.length < 1 || rest.length > 2 || rest.some((a) => a.startsWith('-'))) throw new EciError('EUSAGE', "usage: eci image import SRC [NAME[:TAG]] | eci image import --busybox");
    const { importImage } = await import('../cli/images/import.ts');
    const rec = await importImage(store, rest[0], rest[1], { progress: process.stderr });
    return void console.log(`${rec.name}:${rec.tag}`);
  }
  if (sub === 'ls' || sub === 'list') {
    const list = store.list();
    if (rest.includes('--json')) return void console.log(JSON.stringify(list, null, 2));
    if (rest.some((a) => a !== '--json')) throw new EciError('EUSAGE', "usage: eci image ls [--json]");
    const mb = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}MB` : `${(n / 1e3).toFixed(1)}kB`);
    const rows = [['NAME', 'TAG', 'SIZE', 'CREATED', 'SOURCE'], ...list.map((i) => [i.name, i.tag, mb(i.size), i.created.slice(0, 19).replace('T', ' '), i.source])];
    const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    for (const row of rows) console.log(row.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd());
    return;
  }
  if (sub === 'rm' || sub === 'remove') {
    if (!rest.length) throw new EciError('EUSAGE', 'usage: eci image rm NAME[:TAG]...');
    const { readFileSync } = await import('node:fs');
    for (const n of rest) {
      const ref = parseImageRef(n);
      store.remove(ref, readFileSync('/proc/self/mountinfo', 'utf8'));
      console.log(`removed ${refString(ref)}`);
    }
    return;
  }
  throw new EciError('EUSAGE', `image: unknown subcommand ${JSON.stringify(sub ?? '')}; see 'eci image --help'`);
}

async function installCmd(args: string[], undo: boolean): Promise<void> {
  const { install, uninstall, hostGroups } = await import('../cli/install.ts');
  const config = configFromEnv();
  const repo = repoDir();
  const p = { daemonJson: '/etc/docker/daemon.json', unitDir: '/etc/systemd/system', stateFile: `${config.stateDir}/install.json`, repo, group: { name: config.group, ops: hostGroups } };
  for (let i = 0; i < args.length; i++) {
    const v = args[++i];
    if (v === undefined) throw new EciError('EUSAGE', `${args[i - 1]} needs a value`);
    if (args[i - 1] === '--daemon-json') p.daemonJson = v;
    else if (args[i - 1] === '--unit-dir') p.unitDir = v;
    else throw new EciError('EUSAGE', `unknown flag ${args[i - 1]}; see 'eci ${undo ? 'uninstall' : 'install'} --help'`);
  }
  const changes = undo ? uninstall(p) : install(p);
  console.log(changes.length ? changes.join('\n') : 'nothing to do: already ' + (undo ? 'uninstalled' : 'installed'));
}

export const UNSETTLED = 'eci: internal error: the command ended before it finished (a bug: it waited for an event that never came)';

/**
 * Awaits a command and, should the event loop run dry while it is still pending (it awaits an event
 * that can no longer come), prints UNSETTLED and exits 1, where Node would exit 13 and print nothing.
 * 'beforeExit' comes only when the loop drains, never on a deliberate process.exit().
 */
export async function sayIfUnsettled(work: Promise<void>): Promise<void> {
  let settled = false;
  const drained = () => {
    if (settled) return;
    console.error(UNSETTLED);
    process.exit(1);
  };
  process.once('beforeExit', drained);
  try {
    await work;
  } finally {
    settled = true;
    process.off('beforeExit', drained);
  }
}

export function main(argv: string[]): Promise<void> {
  return sayIfUnsettled(command(argv));
}

async function command(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const cmd = args[0] ?? '';
  try {
    if (cmd === '' || cmd === '--help' || cmd === '-h' || cmd === 'help') help(args[1] ?? '');
    if (cmd === '--version' || cmd === 'version') return void console.log(`eci version ${VERSION}`);
    // eci run: flags after IMAGE belong to the container's command (eci run busybox ls -h).
    if (cmd !== 'run' && (args.includes('--help') || args.includes('-h'))) help(cmd);
    switch (cmd) {
      case 'daemon': return await daemon();
      case 'ps': return await ps(args.slice(1));
      case 'settings': return await settings(args.slice(1));
      case 'events': return await eventsCmd(args.slice(1));
      case 'services': return await servicesCmd(args.slice(1));
      case 'check': return await checkCmd(args.slice(1));
      case 'run': return await runCmd(argv.slice(1));
      case 'image': return await imageCmd(args.slice(1));
      case 'install': return await installCmd(args.slice(1), false);
      case 'uninstall': return await installCmd(args.slice(1), true);
      default: throw new EciError('EUSAGE', `unknown command ${JSON.stringify(cmd)}; see 'eci --help'`);
    }
  } catch (e) {
    if (e instanceof EciError && !debug) {
      console.error(`eci: ${oneLine(e)}${e.hint ? `\nhint: ${e.hint}` : ''}`);
    } else {
      console.error(debug || !(e instanceof Error) ? e : `eci: unexpected error (a bug): ${e.stack}`);
    }
    process.exit(1);
  }
}

// Deno and Node both set import.meta.main-like behaviour differently; bin/eci calls main() itself.
if ((import.meta as { main?: boolean }).main) await main(process.argv.slice(2));
