// `eci services`: the actors registered on the bus ($SRV protocol), with their endpoint counters.
import { connectForCli, type CliBus } from './bus-connect.ts';
import { OBSERVER_INBOX } from '../bus/auth.ts';
import { discover } from '../bus/services.ts';
import { EciError } from '../actors/errors.ts';

interface Endpoint { name: string; subject: string; num_requests: number; num_errors: number; last_error?: string; average_processing_time: number }
interface Stats { name: string; id: string; version: string; started: string; endpoints: Endpoint[] }

export async function services(o: { bus: CliBus; json: boolean; name?: string; out(line: string): void }): Promise<number> {
  const nc = await connectForCli(o.bus);
  try {
    const all = (await discover(nc, 'STATS', o.name, { inboxPrefix: OBSERVER_INBOX })) as unknown as Stats[];
    all.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    if (o.json) {
      o.out(JSON.stringify(all, null, 2));
    } else {
      o.out(['SERVICE', 'ID', 'VERSION', 'ENDPOINT', 'SUBJECT', 'REQUESTS', 'ERRORS', 'AVG'].join('\t'));
      for (const s of all) {
        for (const e of s.endpoints) {
          o.out([s.name, s.id, s.version, e.name, e.subject, e.num_requests, e.num_errors, `${(e.average_processing_time / 1e6).toFixed(2)}ms`].join('\t'));
        }
      }
    }
    if (all.length === 0) throw new EciError('ENOENT', `no eci service answered on ${o.bus.url}${o.name ? ` under the name ${o.name}` : ''}; is \`eci daemon\` running?`);
    return all.length;
  } finally {
    await nc.close();
  }
}
