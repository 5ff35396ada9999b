// Test connections to a manager's bus. The embedded nats-server admits only its identities: tests
// read events as the observer (what `eci events` uses), or act as the manager where a test must.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { OBSERVER_INBOX, observerCredentialsPath } from '../../bus/auth.ts';
import { identitiesPath } from '../../bus/connect.ts';

/** How to log in to the bus at a URL: a manager's dirs (embedded server) or fixed options (an external one). */
const known = new Map<string, { runDir: string; stateDir: string } | Partial<ConnectionOptions>>();

export function registerBus(url: string, how: { runDir: string; stateDir: string } | Partial<ConnectionOptions>): void {
  known.set(url, how);
}

/** Connection options for `url` as `who` (read at each call: a restarted manager may have new ones). */
export function busLogin(url: string, who: 'observer' | 'manager' = 'observer'): Partial<ConnectionOptions> {
  const how = known.get(url);
  if (!how) return {};
  if (!('runDir' in how)) return how as Partial<ConnectionOptions>;
  if (who === 'manager') {
    const ids = JSON.parse(readFileSync(identitiesPath(how.stateDir as string), 'utf8'));
    return { user: ids.manager.user, pass: ids.manager.password };
  }
  const c = JSON.parse(readFileSync(observerCredentialsPath(how.runDir as string), 'utf8'));
  return { user: c.user, pass: c.password, inboxPrefix: OBSERVER_INBOX };
}

export function busConnect(url: string, who: 'observer' | 'manager' = 'observer', o: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({ servers: url, ...busLogin(url, who), ...o });
}

export const managerDirs = (dir: string) => ({ runDir: join(dir, 'run'), stateDir: join(dir, 'state') });
