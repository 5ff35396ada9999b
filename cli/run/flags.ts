// `eci run` flags, Docker's spelling. Pure: argv in, options out, one-line errors (exit 125).
import { EciError } from '../../actors/errors.ts';
import { CAP_NAMES } from '../../actors/runc/caps.ts';
import { ID_PATTERN } from '../../actors/runc/cli.ts';

export interface VolumeFlag { source: string; destination: string; readonly: boolean }

export interface RunOptions {
  interactive: boolean;
  tty: boolean;
  rm: boolean;
  name?: string;
  volumes: VolumeFlag[];
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  /** Namespaces asked to be the host's (pid, ipc, uts, network): the manager refuses them. */
  hostNamespaces: string[];
  env: string[];
  workdir?: string;
  memory?: number;
  user?: { uid: number; gid: number };
  hostname?: string;
  entrypoint?: string;
  image: string;
  cmd: string[];
  help: boolean;
}

const BOOL: Record<string, keyof RunOptions> = { i: 'interactive', interactive: 'interactive', t: 'tty', tty: 'tty', rm: 'rm', privileged: 'privileged', help: 'help' };
const VALUE = new Set(['name', 'v', 'volume', 'cap-add', 'cap-drop', 'pid', 'network', 'net', 'userns', 'ipc', 'uts', 'e', 'env', 'w', 'workdir', 'm', 'memory', 'u', 'user', 'hostname', 'entrypoint']);

const bad = (msg: string) => new EciError('EUSAGE', msg, { hint: "see 'eci run --help'" });

/** "512m", "1g", "1048576" -> bytes; at least 6 MiB, as Docker requires. */
export function parseMemory(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([bkmg]?)$/i.exec(v.trim());
  if (!m) throw bad(`invalid --memory ${JSON.stringify(v)}: expected a number with an optional unit b, k, m or g`);
  const n = Math.floor(Number(m[1]) * { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g']);
  if (n < 6 * 1024 * 1024) throw bad(`--memory ${v}: the minimum is 6m`);
  return n;
}

/** "net_admin", "CAP_NET_ADMIN", "ALL" -> "CAP_NET_ADMIN" / "ALL". */
export function parseCap(v: string): string {
  const u = v.trim().toUpperCase();
  if (u === 'ALL') return u;
  const c = u.startsWith('CAP_') ? u : `CAP_${u}`;
  if (!(CAP_NAMES as readonly string[]).includes(c)) throw bad(`unknown capability ${JSON.stringify(v)}`);
  return c;
}

/** -v SRC:DST[:ro|rw]: host directories or files only (named volumes need an engine). */
export function parseVolume(v: string): VolumeFlag {
  const parts = v.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw bad(`invalid -v ${JSON.stringify(v)}: expected SRC:DST[:ro]`);
  const [source, destination, mode = 'rw'] = parts;
  if (!source.startsWith('/')) throw bad(`invalid -v ${JSON.stringify(v)}: named volumes are not supported by eci run; give an absolute host path`);
  if (!destination.startsWith('/')) throw bad(`invalid -v ${JSON.stringify(v)}: the container path must be absolute`);
  const opts = mode.split(',');
  if (opts.some((o) => o !== 'ro' && o !== 'rw')) throw bad(`invalid -v ${JSON.stringify(v)}: the only modes are ro and rw`);
  return { source, destination, readonly: opts.includes('ro') };
}

function parseUser(v: string): { uid: number; gid: number } {
  const m = /^(\d+|root)(?::(\d+|root))?$/.exec(v);
  if (!m) throw bad(`invalid --user ${JSON.stringify(v)}: expected UID[:GID] (numbers, or root)`);
  const id = (s: string) => (s === 'root' ? 0 : Number(s));
  const uid = id(m[1]);
  const gid = m[2] === undefined ? uid : id(m[2]);
  if (uid > 65535 || gid > 65535) throw bad(`--user ${v}: ids inside an eci container are 0..65535`);
  return { uid, gid };
}

function setNamespace(o: RunOptions, flag: string, v: string): void {
  const ns = flag === 'net' ? 'network' : flag;
  if (flag === 'userns') {
    // The user namespace is always eci's own: --userns=host is ignored, as through Docker.
    if (v !== 'host' && v !== '' && v !== 'private') throw bad(`invalid --userns ${JSON.stringify(v)}: expected host (ignored: eci always uses its own user namespace)`);
    return;
  }
  if (v === 'host') {
    if (!o.hostNamespaces.includes(ns)) o.hostNamespaces.push(ns);
    return;
  }
  const fine = ns === 'network' ? ['none', 'private', 'default'] : ['private', ''];
  if (!fine.includes(v)) {
    throw bad(ns === 'network'
      ? `invalid --network ${JSON.stringify(v)}: eci run has no network bridge; use none (the default: loopback only)`
      : `invalid --${flag} ${JSON.stringify(v)}: expected host or private`);
  }
}

/** `env`: where `-e KEY` (no value) takes KEY's value: the client's environment, when the manager parses. */
export function parseRunArgs(argv: string[], env: Record<string, string | undefined> = process.env): RunOptions {
  const o: RunOptions = { interactive: false, tty: false, rm: false, volumes: [], privileged: false, capAdd: [], capDrop: [], hostNamespaces: [], env: [], image: '', cmd: [], help: false };
  let i = 0;
  const apply = (name: string, v: string) => {
    switch (name) {
      case 'name':
        if (!ID_PATTERN.test(v)) throw bad(`invalid container name ${JSON.stringify(v)}: eci accepts 1-128 of [A-Za-z0-9_-]`);
        o.name = v;
        break;
      case 'v': case 'volume': o.volumes.push(parseVolume(v)); break;
      case 'cap-add': o.capAdd.push(...v.split(',').map(parseCap)); break;
      case 'cap-drop': o.capDrop.push(...v.split(',').map(parseCap)); break;
      case 'pid': case 'network': case 'net': case 'userns': case 'ipc': case 'uts': setNamespace(o, name, v); break;
      case 'e': case 'env':
        if (v === '' || v.startsWith('=')) throw bad(`invalid -e ${JSON.stringify(v)}: expected KEY=VALUE or KEY`);
        if (v.includes('=')) o.env.push(v);
        else if (env[v] !== undefined) o.env.push(`${v}=${env[v]}`);
        break;
      case 'w': case 'workdir':
        if (!v.startsWith('/')) throw bad(`invalid -w ${JSON.stringify(v)}: the working directory must be absolute`);
        o.workdir = v;
        break;
      case 'm': case 'memory': o.memory = parseMemory(v); break;
      case 'u': case 'user': o.user = parseUser(v); break;
      case 'hostname':
        if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(v)) throw bad(`invalid --hostname ${JSON.stringify(v)}`);
        o.hostname = v;
        break;
      case 'entrypoint': o.entrypoint = v; break;
    }
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    if (!a.startsWith('-') || a === '-') break;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (name === 'detach' || name === 'd') throw bad('-d/--detach is not supported by eci run yet');
      if (Object.hasOwn(BOOL, name)) {
        if (eq >= 0 && !['true', 'false'].includes(a.slice(eq + 1))) throw bad(`invalid ${a}: expected true or false`);
        (o as unknown as Record<string, boolean>)[BOOL[name]] = eq < 0 || a.slice(eq + 1) === 'true';
      } else if (VALUE.has(name)) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw bad(`flag --${name} needs a value`);
        apply(name, v);
      } else throw bad(`unknown flag: --${name}`);
      continue;
    }
    // Short flags, possibly grouped (-it); a value flag takes the rest of the word or the next one.
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      if (c === 'd') throw bad('-d/--detach is not supported by eci run yet');
      if (c === 'h') { o.help = true; continue; }
      if (Object.hasOwn(BOOL, c)) { (o as unknown as Record<string, boolean>)[BOOL[c]] = true; continue; }
      if (VALUE.has(c)) {
        const rest = a.slice(j + 1).replace(/^=/, '');
        const v = rest !== '' ? rest : argv[++i];
        if (v === undefined) throw bad(`flag -${c} needs a value`);
        apply(c, v);
        break;
      }
      throw bad(`unknown shorthand flag: '${c}' in ${a}`);
    }
  }
  if (o.help) return o;
  if (i >= argv.length) throw bad('"eci run" requires at least 1 argument: IMAGE [CMD...]');
  o.image = argv[i];
  o.cmd = argv.slice(i + 1);
  return o;
}
