// An external bus (ECI_NATS_URL): it needs credentials, and TLS where it is not on this host. The
// manager refuses an unauthenticated or plain-text remote bus unless the administrator allowed it
// (ECI_NATS_ALLOW_INSECURE=1), because whoever can publish there can steer the manager.
import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { readCredentials } from './auth.ts';
import { BusError } from './errors.ts';

export interface RemoteBusAuth {
  /** A JSON {user, password} file, or a NATS `.creds` file (JWT + nkey seed). */
  credsFile?: string;
  user?: string;
  password?: string;
  /** CA bundle for the server's certificate; setting it asks for TLS. */
  tlsCa?: string;
  allowInsecure: boolean;
}

export function remoteAuthFromEnv(env: NodeJS.ProcessEnv): RemoteBusAuth {
  return {
    credsFile: env.ECI_NATS_CREDS || undefined,
    user: env.ECI_NATS_USER || undefined,
    password: env.ECI_NATS_PASSWORD || undefined,
    tlsCa: env.ECI_NATS_TLS_CA || undefined,
    allowInsecure: env.ECI_NATS_ALLOW_INSECURE === '1',
  };
}

/** Every server of a (comma-separated) NATS URL is on this host. */
export function isLoopback(url: string): boolean {
  return url.split(',').every((u) => {
    let host: string;
    try {
      host = new URL(/^[a-z]+:\/\//i.test(u.trim()) ? u.trim() : `nats://${u.trim()}`).hostname;
    } catch {
      return false;
    }
    return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  });
}

const wantsTls = (url: string, a: RemoteBusAuth) => !!a.tlsCa || url.split(',').every((u) => /^tls:\/\//i.test(u.trim()));

/**
 * The rule, pure: credentials always; TLS unless every server is on this host. Returns what is
 * missing (empty: fine).
 */
export function remoteBusGaps(url: string, a: RemoteBusAuth): string[] {
  const gaps: string[] = [];
  if (!a.credsFile && !(a.user && a.password)) gaps.push('no credentials (ECI_NATS_CREDS, or ECI_NATS_USER and ECI_NATS_PASSWORD)');
  if (!isLoopback(url) && !wantsTls(url, a)) gaps.push('no TLS for a bus off this host (a tls:// URL or ECI_NATS_TLS_CA)');
  return gaps;
}

/**
 * Connection options for an external bus. `role` says who asks: the manager refuses gaps unless
 * allowed; a CLI tool just connects with whatever it was given.
 */
export function remoteConnectOptions(url: string, a: RemoteBusAuth, role: 'manager' | 'cli'): Partial<ConnectionOptions> {
  const gaps = remoteBusGaps(url, a);
  if (role === 'manager' && gaps.length && !a.allowInsecure) {
    throw new BusError('EBUSINSECURE', `refusing the bus at ${url}: ${gaps.join('; ')}; set ECI_NATS_ALLOW_INSECURE=1 to run on it anyway`);
  }
  const o: Partial<ConnectionOptions> = {};
  if (a.credsFile) {
    let raw: Buffer;
    try {
      raw = readFileSync(a.credsFile);
    } catch (e) {
      throw new BusError('EBUSAUTH', `cannot read ECI_NATS_CREDS ${a.credsFile} (${(e as NodeJS.ErrnoException).code})`);
    }
    if (raw.toString('utf8').includes('BEGIN NATS USER JWT')) o.authenticator = credsAuthenticator(new Uint8Array(raw));
    else Object.assign(o, (({ user, password }) => ({ user, pass: password }))(readCredentials(a.credsFile)));
  } else if (a.user && a.password) {
    Object.assign(o, { user: a.user, pass: a.password });
  }
  if (wantsTls(url, a)) o.tls = a.tlsCa ? { caFile: a.tlsCa } : {};
  return o;
}
