// How a command-line tool (eci events, eci services) reaches the bus: as the observer (reads events,
// asks $SRV endpoints, changes nothing), with one clear line if it can't.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EciError } from '../actors/errors.ts';
import { OBSERVER_INBOX, observerCredentialsPath, readCredentials } from '../bus/auth.ts';
import { BusError } from '../bus/errors.ts';
import { remoteConnectOptions, type RemoteBusAuth } from '../bus/remote.ts';

export interface CliBus {
  url: string;
  /** Set for an external bus (ECI_NATS_URL): its credentials come from the environment. */
  external: boolean;
  runDir: string;
  auth: RemoteBusAuth;
}

export async function connectForCli(o: CliBus): Promise<NatsConnection> {
  let auth: Record<string, unknown>;
  try {
    if (o.external || o.auth.credsFile) auth = remoteConnectOptions(o.url, o.auth, 'cli');
    else {
      const c = readCredentials(observerCredentialsPath(o.runDir));
      auth = { user: c.user, pass: c.password };
    }
  } catch (e) {
    if (e instanceof BusError) throw new EciError(e.code, e.message, { cause: e });
    throw e;
  }
  try {
    return await connect({ servers: o.url, timeout: 2000, inboxPrefix: OBSERVER_INBOX, ...auth });
  } catch (e) {
    throw new EciError('EDOWN', `cannot reach NATS at ${o.url} (${(e as Error).message}); is \`eci daemon\` running? (ECI_NATS_URL / ECI_NATS_PORT)`);
  }
}

/** The CLI's bus from the manager's configuration. */
export function cliBus(c: { natsUrl?: string; natsPort: number; runDir: string; natsAuth: RemoteBusAuth }): CliBus {
  return { url: c.natsUrl ?? `nats://127.0.0.1:${c.natsPort}`, external: c.natsUrl !== undefined, runDir: c.runDir, auth: c.natsAuth };
}
