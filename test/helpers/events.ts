// Reads eci's event stream back from JetStream, as `nats stream view` would.
import { busConnect } from './bus.ts';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { EVENTS_STREAM } from '../../bus/subjects.ts';
import { validateEvent, type EciEvent } from '../../bus/schemas/v1.ts';

/** Every event on `subject` from the start of the stream (or from `since` on), validated, in stream order. */
export async function replay(url: string, subject: string, since?: Date): Promise<{ seq: number; subject: string; event: EciEvent }[]> {
  const nc = await busConnect(url);
  try {
    const js = jetstream(nc);
    // A single filter string: nats-server 2.9 has no multi-filter consumers.
    const c = await js.consumers.get(EVENTS_STREAM, { filter_subjects: subject, ...(since ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() } : {}) });
    const out: { seq: number; subject: string; event: EciEvent }[] = [];
    const info = await c.info(true);
    let pending = info.num_pending;
    while (pending > 0) {
      const batch = await c.fetch({ max_messages: Math.min(pending, 256), expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        out.push({ seq: m.seq, subject: m.subject, event: validateEvent(m.json()) });
        got++;
      }
      if (!got) break;
      pending -= got;
    }
    return out;
  } finally {
    await nc.close();
  }
}
