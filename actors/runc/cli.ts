// Parses a runc-compatible command line (runc 1.1.5 flags, as containerd, Docker and Podman send
// them). Pure: the runtime server decides what to do with the result.
import { EciError } from '../errors.ts';

export interface RuncCommandLine {
  /** Global arguments exactly as given, passed on to runc. */
  global: string[];
  root?: string;
  log?: string;
  logFormat?: string;
  debug: boolean;
  command?: string;
  /** Arguments after the command, exactly as given. */
  args: string[];
  /** Parsed from args for the commands eci acts on. */
  id?: string;
  bundle?: string;
  /** create/run: where the engine wants the init pid (Podman: in its runroot's per-container dir). */
  pidFile?: string;
  detach: boolean;
  force: boolean;
}

const GLOBAL_WITH_VALUE = new Set(['root', 'log', 'log-format', 'criu', 'rootless']);
const GLOBAL_BOOL = new Set(['debug', 'systemd-cgroup', 'help', 'h', 'version', 'v']);

// Per-command flags that take a value (so the id is not mistaken for one).
const VALUE_FLAGS: Record<string, Set<string>> = {
  create: new Set(['bundle', 'b', 'console-socket', 'pid-file', 'preserve-fds']),
  run: new Set(['bundle', 'b', 'console-socket', 'pid-file', 'preserve-fds']),
  exec: new Set(['process', 'p', 'console-socket', 'cwd', 'env', 'e', 'user', 'u', 'additional-gids', 'g', 'cap', 'c',
    'pid-file', 'process-label', 'apparmor', 'preserve-fds', 'cgroup']),
  delete: new Set([]),
  start: new Set([]),
  kill: new Set([]),
  state: new Set([]),
};

function flagName(a: string): { name: string; inline?: string } | undefined {
  if (!a.startsWith('-') || a === '-' || a === '--') return undefined;
  const body = a.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return eq < 0 ? { name: body } : { name: body.slice(0, eq), inline: body.slice(eq + 1) };
}

/** runc's id rule narrowed to what a NATS subject token can carry (no '.', '+'). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

export function parseRuncArgs(argv: string[]): RuncCommandLine {
  const out: RuncCommandLine = { global: [], args: [], debug: false, detach: false, force: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    const f = flagName(a);
    if (!f) break;
    out.global.push(a);
    if (GLOBAL_WITH_VALUE.has(f.name)) {
      let v = f.inline;
      if (v === undefined) {
        if (i + 1 >= argv.length) throw new EciError('EUSAGE', `flag ${JSON.stringify(`--${f.name}`)} needs a value`);
        v = argv[++i];
        out.global.push(v);
      }
      if (f.name === 'root') out.root = v;
      else if (f.name === 'log') out.log = v;
      else if (f.name === 'log-format') out.logFormat = v;
    } else if (f.name === 'debug') {
      out.debug = true;
    } else if (!GLOBAL_BOOL.has(f.name) && f.inline === undefined) {
      // Unknown global flags pass through to runc untouched; a following non-flag is the command.
    }
  }
  out.command = argv[i];
  out.args = argv.slice(i + 1);
  // Own keys only: a command named like an Object.prototype member ("toString") is just unknown.
  const vf = out.command && Object.hasOwn(VALUE_FLAGS, out.command) ? VALUE_FLAGS[out.command] : undefined;
  if (!vf) return out;
  for (let j = 0; j < out.args.length; j++) {
    const a = out.args[j];
    if (a === '--') { out.id = out.args[j + 1]; break; }
    const f = flagName(a);
    if (!f) { out.id = a; break; }
    let v = f.inline;
    if (vf.has(f.name) && v === undefined) {
      if (j + 1 >= out.args.length) throw new EciError('EUSAGE', `${out.command}: flag ${JSON.stringify(`--${f.name}`)} needs a value`);
      v = out.args[++j];
    }
    if (f.name === 'bundle' || f.name === 'b') out.bundle = v;
    else if (f.name === 'pid-file' && (out.command === 'create' || out.command === 'run')) out.pidFile = v;
    else if (f.name === 'detach' || f.name === 'd') out.detach = true;
    else if (f.name === 'force' || f.name === 'f') out.force = true;
  }
  if (out.id !== undefined && !ID_PATTERN.test(out.id)) {
    throw new EciError('EBADID', `invalid container id ${JSON.stringify(out.id)}: eci accepts 1-128 of [A-Za-z0-9_-]`);
  }
  return out;
}

/** The state directory runc keeps for a container (its existence means runc still knows it). */
export function runcStateDir(root: string | undefined, id: string): string {
  return `${root ?? '/run/runc'}/${id}`;
}
