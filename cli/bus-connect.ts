// How a command-line tool (eci events, eci services) reaches the bus: one clear line if it can't.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EciError } from '../actors/errors.ts';

export async function connectForCli(url: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, timeout: 2000 });
  } catch (e) {
    throw new EciError('EDOWN', `cannot reach NATS at ${url} (${(e as Error).message}); is \`eci daemon\` running? (ECI_NATS_URL / ECI_NATS_PORT)`);
  }
}
