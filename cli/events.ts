// `eci events`: follow or replay the event stream, as `nats sub` / `nats stream view` would.
import { connectForCli, type CliBus } from './bus-connect.ts';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { EVENTS_STREAM, EVENTS_SUBJECTS, subjects } from '../bus/subjects.ts';
import { validateEvent, type EciEvent } from '../bus/schemas/v1.ts';
import { EciError } from '../actors/errors.ts';

export interface EventsOptions {
  bus: CliBus;
  follow: boolean;
  since?: string; // ISO time or a duration like 10m
  seq?: number;
  container?: string;
  kind?: string; // container | allocator | vetter | settings | manager | sysctl
  json: boolean;
  out: (line: string) => void;
}

export function parseSince(s: string, now = Date.now()): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(s);
  if (m) return new Date(now - Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as 's']);
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new EciError('EUSAGE', `--since ${JSON.stringify(s)}: expected an ISO time or a duration like 30s, 10m, 2h, 1d`);
  return new Date(t);
}

export function subjectFilter(o: Pick<EventsOptions, 'container' | 'kind'>): string {
  if (o.container && !/^[A-Za-z0-9_-]{1,128}$/.test(o.container)) throw new EciError('EUSAGE', `--container ${JSON.stringify(o.container)}: not a container id`);
  if (o.container) {
    if (o.kind && o.kind !== 'container' && o.kind !== 'vetter') throw new EciError('EUSAGE', `--container goes with --kind container or vetter, not ${o.kind}`);
    return o.kind === 'vetter' ? subjects.vetterEvents(o.container) : subjects.containerEvents(o.container);
  }
  if (o.kind) {
    if (!['container', 'allocator', 'vetter', 'settings', 'manager', 'sysctl'].includes(o.kind)) throw new EciError('EUSAGE', `--kind ${o.kind}: one of container, allocator, vetter, settings, manager, sysctl`);
    return subjects.kindEvents(o.kind);
  }
  return EVENTS_SUBJECTS;
}

/** One line for a human. */
export function formatEvent(seq: number, e: EciEvent): string {
  const d = e.data as unknown as Record<string, unknown>;
  const who = typeof d.container === 'string' ? ` ${d.container.slice(0, 12)}` : '';
  const rest: string[] = [];
  for (const [k, v] of Object.entries(d)) {
    if (k === 'container' || k === 'settings' || v === undefined) continue;
    rest.push(`${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  return `${e.ts} #${seq} ${e.type}${who} ${rest.join(' ')}`.trimEnd();
}

export async function events(o: EventsOptions): Promise<void> {
  const nc = await connectForCli(o.bus);
  try {
    const js = jetstream(nc);
    const opts: Record<string, unknown> = { filter_subjects: subjectFilter(o) };
    if (o.seq !== undefined) Object.assign(opts, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: o.seq });
    else if (o.since) Object.assign(opts, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: parseSince(o.since).toISOString() });
    else if (o.follow) Object.assign(opts, { deliver_policy: DeliverPolicy.New });
    const c = await js.consumers.get(EVENTS_STREAM, opts);
    if (!o.follow) {
      // Replay what is there now, then stop.
      let pending = (await c.info(true)).num_pending;
      while (pending > 0) {
        const batch = await c.fetch({ max_messages: Math.min(pending, 500), expires: 2000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          emit(o, m.seq, m.json());
        }
        if (!got) break;
        pending -= got;
      }
      return;
    }
    const msgs = await c.consume();
    const stop = () => void msgs.close();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    for await (const m of msgs) emit(o, m.seq, m.json());
  } finally {
    await nc.close();
  }
}

function emit(o: EventsOptions, seq: number, raw: unknown): void {
  let e: EciEvent;
  try {
    e = validateEvent(raw);
  } catch (err) {
    o.out(o.json ? JSON.stringify({ seq, invalid: (err as Error).message }) : `#${seq} (invalid event: ${(err as Error).message})`);
    return;
  }
  o.out(o.json ? JSON.stringify({ seq, ...e }) : formatEvent(seq, e));
}
