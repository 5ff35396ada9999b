// The eci command line. Runs on Node (through bin/eci, compiled) and on Deno (deno run -A bin/eci.ts).
import process from 'node:process';
import { EciError, oneLine } from '../actors/errors.ts';
import { configFromEnv } from '../actors/config.ts';
import { control } from '../actors/control-client.ts';
import type { ContainerView } from '../actors/system.ts';

const VERSION = '0.1.0';

const HELP: Record<string, string> = {
  '': `Usage: eci COMMAND [OPTIONS]

Enhanced Container Isolation: every container in its own user namespace with an exclusive
65536-wide uid/gid range, coordinated by actors over NATS.

Commands:
  daemon     Run the manager (embedded nats-server unless ECI_NATS_URL is set)
  ps         List containers with their uid/gid ranges and states
  settings   Check an admin settings file (settings validate FILE) or print the defaults
  events     Follow or replay lifecycle, allocator, vetter and settings events
  services   List the actors registered as NATS micro-services, with request counters
  check      Run every isolation property against the live system (through Docker)
  install    Register eci in Docker's daemon.json and write a systemd unit for the manager
  uninstall  Undo exactly what install did
  version    Print the version

Engines call bin/eci-runc, a runc-compatible runtime. Run 'eci COMMAND --help' for more.
Environment: ECI_SOCKET, ECI_STATE_DIR, ECI_RUN_DIR, ECI_NATS_URL, ECI_NATS_PORT, ECI_RUNC,
ECI_UID_BASE, ECI_UID_SIZE, ECI_UID_COUNT, ECI_LOG_LEVEL (see README).`,
  daemon: `Usage: eci daemon

Runs the eci manager in the foreground, logging JSON lines to stdout. Listens on ECI_SOCKET
(default /run/eci/eci.sock) for eci-runc; keeps state under ECI_STATE_DIR (default /var/lib/eci).
Stops cleanly on SIGINT/SIGTERM.`,
  settings: `Usage: eci settings validate [FILE]
       eci settings defaults

validate checks FILE (default: ECI_SETTINGS or /etc/eci/settings.json) and prints the settings
it yields, or one line naming the bad field and why, with exit status 1.
defaults prints the built-in settings (the schema, by example).`,
  events: `Usage: eci events [--follow|-f] [--since TIME|DURATION] [--seq N] [--container ID]
                  [--kind container|allocator|vetter|settings|manager|sysctl] [--json]

Without --follow, prints the events stored so far (from --since/--seq, else from the start) and
exits; with --follow, prints new events as they happen (or from --since/--seq on) until Ctrl-C.
Reads the JetStream stream ECI_EVENTS at ECI_NATS_URL (default nats://127.0.0.1:ECI_NATS_PORT).`,
  check: `Usage: eci check [--docker PATH] [--host DOCKER_HOST] [--runtime NAME] [--image IMAGE]

Runs small containers through the Docker engine (default client /usr/bin/docker, runtime "eci",
image "eci-busybox" as made by bin/eci-quickstart) and prints, for every isolation property, what
is expected, what was observed and whether it passed. Exits 1 if any property fails.`,
  services: `Usage: eci services [NAME] [--json]

Asks every service on the bus ($SRV.STATS, the NATS micro-service protocol) and prints one line
per endpoint: service, instance id, version, endpoint, subject, requests, errors, average time.
NAME limits it to one service (eci-allocator, eci-vetter, eci-sysctl). The NATS CLI shows the
same with 'nats micro ls' and 'nats micro stats NAME'. Exits 1 if no service answers.`,
  install: `Usage: eci install [--daemon-json PATH] [--unit-dir DIR]

Adds runtime "eci" (this checkout's bin/eci-runc) to /etc/docker/daemon.json, keeping every other
key, and writes /etc/systemd/system/eci.service for the manager. Idempotent; prints what changed.
A malformed daemon.json is reported and left untouched.`,
  uninstall: `Usage: eci uninstall [--daemon-json PATH] [--unit-dir DIR]

Undoes exactly what install did: the "eci" runtime entry (or puts back the one that was there),
the unit file. Idempotent.`,
  ps: `Usage: eci ps [--json]

Lists the containers the manager knows, with state and host uid/gid range.`,
};

function help(cmd: string): never {
  console.log(HELP[cmd] ?? HELP['']);
  process.exit(0);
}

async function daemon(): Promise<void> {
  const { pino } = await import('pino');
  const { Manager } = await import('../actors/system.ts');
  const native = await import('../native/index.ts');
  const config = configFromEnv();
  const log = pino({ level: config.logLevel, base: { pid: process.pid, name: 'eci' } });
  const m = new Manager(config, log, native);
  await m.start();
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
  const rows = [['CONTAINER', 'STATE', 'UID MAP', 'GID MAP', 'CREATED'],
    ...r.containers.map((c) => [c.id.slice(0, 12), c.state, fmtRange(c.uid), fmtRange(c.gid), c.created])];
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
  const { services } = await import('../actors/services-cli.ts');
  const config = configFromEnv();
  let name: string | undefined;
  let json = false;
  for (const a of args) {
    if (a === '--json') json = true;
    else if (a.startsWith('-')) throw new EciError('EUSAGE', `services: unknown flag ${a}; see 'eci services --help'`);
    else if (name === undefined && /^[A-Za-z0-9_-]+$/.test(a)) name = a;
    else throw new EciError('EUSAGE', `services: unexpected argument ${JSON.stringify(a)}; see 'eci services --help'`);
  }
  await services({ url: config.natsUrl ?? `nats://127.0.0.1:${config.natsPort}`, json, name, out: (l) => console.log(l) });
}

async function eventsCmd(args: string[]): Promise<void> {
  const { events } = await import('../actors/events-cli.ts');
  const config = configFromEnv();
  const o: Parameters<typeof events>[0] = {
    url: config.natsUrl ?? `nats://127.0.0.1:${config.natsPort}`, follow: false, json: false, out: (l) => console.log(l),
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
  const { runChecks, formatChecks } = await import('../actors/check.ts');
  const o = { docker: '/usr/bin/docker', host: process.env.DOCKER_HOST, runtime: 'eci', image: 'eci-busybox', out: (l: string) => console.log(l) };
  for (let i = 0; i < args.length; i++) {
    const v = args[i + 1];
    if (v === undefined && args[i].startsWith('--')) throw new EciError('EUSAGE', `${args[i]} needs a value`);
    if (args[i] === '--docker') o.docker = args[++i];
    else if (args[i] === '--host') o.host = args[++i];
    else if (args[i] === '--runtime') o.runtime = args[++i];
    else if (args[i] === '--image') o.image = args[++i];
    else throw new EciError('EUSAGE', `check: unknown flag ${args[i]}; see 'eci check --help'`);
  }
  const r = await runChecks(o);
  for (const l of formatChecks(r)) console.log(l);
  if (r.some((x) => !x.pass)) process.exit(1);
}

async function installCmd(args: string[], undo: boolean): Promise<void> {
  const { install, uninstall } = await import('../actors/install.ts');
  const { fileURLToPath } = await import('node:url');
  const config = configFromEnv();
  const here = fileURLToPath(new URL('.', (import.meta as { url: string }).url));
  const repo = here.replace(/\/dist\/bin\/?$|\/bin\/?$/, '');
  const p = { daemonJson: '/etc/docker/daemon.json', unitDir: '/etc/systemd/system', stateFile: `${config.stateDir}/install.json`, repo };
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

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const cmd = args[0] ?? '';
  try {
    if (cmd === '' || cmd === '--help' || cmd === '-h' || cmd === 'help') help(args[1] ?? '');
    if (cmd === '--version' || cmd === 'version') return void console.log(`eci version ${VERSION}`);
    if (args.includes('--help') || args.includes('-h')) help(cmd);
    switch (cmd) {
      case 'daemon': return await daemon();
      case 'ps': return await ps(args.slice(1));
      case 'settings': return await settings(args.slice(1));
      case 'events': return await eventsCmd(args.slice(1));
      case 'services': return await servicesCmd(args.slice(1));
      case 'check': return await checkCmd(args.slice(1));
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
