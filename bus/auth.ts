// Who may use the bus. The embedded nats-server knows two identities: `manager` (everything) and
// `observer` (reads the event stream and asks the $SRV endpoints, changes nothing). Their passwords
// are made on the first start and kept in the state dir (0600, root); the observer's copy goes to
// the run dir, readable by the `eci` group (`eci install` creates it) so `eci events` and
// `eci services` work for its members. Nobody else can connect.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { BusError } from './errors.ts';
import { EVENTS_STREAM, EVENTS_SUBJECTS } from './subjects.ts';

export interface Credentials { user: string; password: string }
export interface BusIdentities { manager: Credentials; observer: Credentials }

/** Where the manager leaves the observer's credentials for the CLI (the run dir is 0711). */
export const observerCredentialsPath = (runDir: string) => `${runDir}/observer.json`;

/** The observer's replies come under this prefix, so it never needs (nor gets) `_INBOX.>`. */
export const OBSERVER_INBOX = '_INBOX.eci-observer';

/**
 * What the observer may do, checked against nats-server 2.9.10 with nats.js 3.4's ordered consumer
 * (what `eci events` uses): create an ephemeral consumer on ECI_EVENTS (named form, with a filter),
 * pull from it, read the stream's info, and send $SRV PING/INFO/STATS. No purge, delete, update,
 * message delete or direct publish into `eci.v1.>`; no subscription to requests or others' inboxes.
 */
export function observerPermissions(): { publish: string[]; subscribe: string[] } {
  return {
    publish: [
      `$JS.API.CONSUMER.CREATE.${EVENTS_STREAM}.>`,
      `$JS.API.CONSUMER.MSG.NEXT.${EVENTS_STREAM}.>`,
      `$JS.API.STREAM.INFO.${EVENTS_STREAM}`,
      '$SRV.>',
    ],
    subscribe: [EVENTS_SUBJECTS, `${OBSERVER_INBOX}.>`],
  };
}

export interface ServerConfigOptions {
  port: number;
  ids: BusIdentities;
  /** JetStream's ceiling on disk: the event stream's own limit plus room for the KV buckets. */
  maxFileStore: number;
  maxMemoryStore: number;
}

const q = (s: string) => JSON.stringify(s);
const list = (xs: string[]) => `[${xs.map(q).join(', ')}]`;

/** The nats-server config text (pure). The store dir is given on the command line (`-sd`). */
export function serverConfig(o: ServerConfigOptions): string {
  const p = observerPermissions();
  return `# Written by the eci manager at each start; edits are lost.
listen: "127.0.0.1:${o.port}"
jetstream {
  max_file_store: ${o.maxFileStore}
  max_memory_store: ${o.maxMemoryStore}
}
authorization {
  users = [
    { user: ${q(o.ids.manager.user)}, password: ${q(o.ids.manager.password)}, permissions: { publish: ">", subscribe: ">" } }
    { user: ${q(o.ids.observer.user)}, password: ${q(o.ids.observer.password)}, permissions: {
        publish: { allow: ${list(p.publish)} }
        subscribe: { allow: ${list(p.subscribe)} }
      } }
  ]
}
`;
}

const secret = () => randomBytes(24).toString('base64url');

function isCreds(v: unknown): v is Credentials {
  const c = v as Credentials;
  return !!c && typeof c.user === 'string' && typeof c.password === 'string' && /^[A-Za-z0-9_-]{16,}$/.test(c.password);
}

/** Writes through a temp file and rename, with the mode set before the content lands. */
function writePrivate(path: string, text: string, mode: number, gid?: number): void {
  const tmp = `${path}.tmp`;
  rmSync(tmp, { force: true }); // a leftover keeps its mode: start from none
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  if (gid !== undefined) chownSync(tmp, 0, gid);
  renameSync(tmp, path);
}

/** The identities kept at `path` (0600), made now if missing or unreadable; `created` says which. */
export function loadOrCreateIdentities(path: string): { ids: BusIdentities; created: boolean } {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as BusIdentities;
    if (isCreds(v.manager) && isCreds(v.observer)) return { ids: v, created: false };
  } catch { /* missing or damaged: make new ones */ }
  const ids: BusIdentities = { manager: { user: 'manager', password: secret() }, observer: { user: 'observer', password: secret() } };
  writePrivate(path, JSON.stringify(ids) + '\n', 0o600);
  return { ids, created: true };
}

/** The gid of a group, or undefined when it does not exist. */
export function groupId(name: string): number | undefined {
  try {
    const line = execFileSync('getent', ['group', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const gid = Number(line.split(':')[2]);
    return Number.isInteger(gid) ? gid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The observer's credentials for the CLI: 0640 root:<group> when the group exists, else 0600 (root
 * only). Returns the mode it got.
 */
export function writeObserverCredentials(path: string, c: Credentials, group: string): number {
  const gid = groupId(group);
  const mode = gid === undefined ? 0o600 : 0o640;
  writePrivate(path, JSON.stringify(c) + '\n', mode, gid);
  return mode;
}

/** Reads a credentials file (JSON {user, password}); one line naming the file if it cannot. */
export function readCredentials(path: string): Credentials {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EACCES' ? 'only root and members of the eci group may use the bus' : 'is `eci daemon` running?';
    throw new BusError('EBUSAUTH', `cannot read the bus credentials ${path} (${code}): ${why}`);
  }
  try {
    const v = JSON.parse(text);
    if (v && typeof v.user === 'string' && typeof v.password === 'string') return { user: v.user, password: v.password };
  } catch { /* below */ }
  throw new BusError('EBUSAUTH', `${path}: expected JSON {"user": ..., "password": ...}`);
}
