// The actors as NATS micro-services: each answers the `$SRV` discovery protocol (PING, INFO, STATS)
// so `nats micro ls|info|stats` and `eci services` can list them and show per-endpoint counters.
// @nats-io/services exists only as a pre-release built on an older nats-core, so the small protocol
// is spoken here directly. Endpoints are counted by wrapping the connection the actor subscribes
// with: the actors stay unaware of it.
import type { Msg, NatsConnection, Subscription, SubscriptionOptions } from '@nats-io/transport-node';
import { ulid } from 'ulid';

export const SRV_PREFIX = '$SRV';
export const PING_TYPE = 'io.nats.micro.v1.ping_response';
export const INFO_TYPE = 'io.nats.micro.v1.info_response';
export const STATS_TYPE = 'io.nats.micro.v1.stats_response';

export interface ServiceConfig {
  /** Service kind, shared by every instance: [A-Za-z0-9_-]+. */
  name: string;
  /** Semantic version. */
  version: string;
  description?: string;
  metadata?: Record<string, string>;
  /** Request subjects (as subscribed, wildcards included) and their endpoint names. */
  endpoints: { name: string; subject: string; queue_group?: string }[];
}

export interface EndpointStats {
  name: string;
  subject: string;
  queue_group?: string;
  num_requests: number;
  num_errors: number;
  last_error: string;
  /** Nanoseconds, as the protocol wants. */
  processing_time: number;
  average_processing_time: number;
}

const NAME = /^[A-Za-z0-9_-]+$/;
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const decoder = new TextDecoder();

/** The error an endpoint answered, if any: replies of the form {ok:false, code, reason}. */
export function replyError(data: unknown): string | undefined {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (data instanceof Uint8Array) text = decoder.decode(data);
  else return undefined;
  if (!text.startsWith('{') || !text.includes('"ok":false')) return undefined;
  try {
    const r = JSON.parse(text) as { ok?: unknown; code?: unknown; reason?: unknown };
    if (r.ok !== false) return undefined;
    return [r.code, r.reason].filter((x) => typeof x === 'string' && x).join(': ') || 'error';
  } catch { return undefined; }
}

export class MicroService {
  readonly id = ulid();
  readonly started = new Date().toISOString();
  private readonly stats = new Map<string, EndpointStats>();
  private subs: Subscription[] = [];

  constructor(private readonly nc: NatsConnection, readonly config: ServiceConfig) {
    if (!NAME.test(config.name)) throw new TypeError(`invalid service name ${JSON.stringify(config.name)}`);
    if (!SEMVER.test(config.version)) throw new TypeError(`invalid service version ${JSON.stringify(config.version)}`);
    for (const e of config.endpoints) {
      this.stats.set(e.subject, {
        name: e.name, subject: e.subject, ...(e.queue_group ? { queue_group: e.queue_group } : {}),
        num_requests: 0, num_errors: 0, last_error: '', processing_time: 0, average_processing_time: 0,
      });
    }
  }

  private identity() {
    return { name: this.config.name, id: this.id, version: this.config.version, metadata: this.config.metadata ?? {} };
  }

  ping() { return { type: PING_TYPE, ...this.identity() }; }

  info() {
    return {
      type: INFO_TYPE, ...this.identity(), description: this.config.description ?? '',
      endpoints: [...this.stats.values()].map((s) => ({ name: s.name, subject: s.subject, ...(s.queue_group ? { queue_group: s.queue_group } : {}), metadata: {} })),
    };
  }

  statsResponse() {
    return { type: STATS_TYPE, ...this.identity(), started: this.started, endpoints: [...this.stats.values()].map((s) => ({ ...s })) };
  }

  /** Answers $SRV.<VERB>, $SRV.<VERB>.<name> and $SRV.<VERB>.<name>.<id>. */
  start(): void {
    const verbs: [string, () => unknown][] = [['PING', () => this.ping()], ['INFO', () => this.info()], ['STATS', () => this.statsResponse()]];
    for (const [verb, answer] of verbs) {
      for (const subject of [`${SRV_PREFIX}.${verb}`, `${SRV_PREFIX}.${verb}.${this.config.name}`, `${SRV_PREFIX}.${verb}.${this.config.name}.${this.id}`]) {
        this.subs.push(this.nc.subscribe(subject, { callback: (err, m) => { if (!err) m.respond(JSON.stringify(answer())); } }));
      }
    }
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
  }

  /** Counts one request of an endpoint; `ns` is the time to the reply. */
  record(subject: string, ns: number, error?: string): void {
    const s = this.stats.get(subject);
    if (!s) return;
    s.num_requests++;
    s.processing_time += ns;
    s.average_processing_time = Math.round(s.processing_time / s.num_requests);
    if (error !== undefined) { s.num_errors++; s.last_error = error; }
  }

  /**
   * The connection to give the actor: identical, except that subscriptions to this service's
   * endpoint subjects time each request until its reply and count error replies.
   */
  connection(): NatsConnection {
    const nc = this.nc;
    const subscribe = (subject: string, opts?: SubscriptionOptions): Subscription => {
      const cb = opts?.callback;
      if (!this.stats.has(subject) || !cb) return nc.subscribe(subject, opts);
      return nc.subscribe(subject, {
        ...opts,
        callback: (err, m) => {
          if (err) return cb(err, m);
          const t0 = performance.now();
          const respond: Msg['respond'] = (data, o) => {
            this.record(subject, Math.round((performance.now() - t0) * 1e6), replyError(data));
            return m.respond(data, o);
          };
          try {
            cb(err, new Proxy(m, { get: (t, p) => (p === 'respond' ? respond : Reflect.get(t, p, t)) }));
          } catch (e) {
            // An exception escaping a callback would close nats.js's reader, and with it the whole
            // bus: a malformed request must cost one error reply, never the manager.
            respond(JSON.stringify({ ok: false, code: 'EBADREQ', reason: `malformed request: ${(e as Error).message}` }));
          }
        },
      });
    };
    return new Proxy(nc, {
      get: (t, p) => {
        if (p === 'subscribe') return subscribe;
        const v = Reflect.get(t, p, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  }
}

/** Every service answering `$SRV.<verb>[.<name>]` within `waitMs` (the protocol has no end marker). */
/** `inboxPrefix`: the connection's own (the observer may subscribe only under OBSERVER_INBOX). */
export async function discover(nc: NatsConnection, verb: 'PING' | 'INFO' | 'STATS', name?: string, o: { waitMs?: number; inboxPrefix?: string } = {}): Promise<Record<string, unknown>[]> {
  const waitMs = o.waitMs ?? 500;
  const inbox = `${o.inboxPrefix ?? '_INBOX'}.eci-srv.${ulid()}`;
  const out: Record<string, unknown>[] = [];
  const sub = nc.subscribe(inbox, { callback: (err, m) => { if (!err) { try { out.push(m.json()); } catch { /* not a service answer */ } } } });
  nc.publish(`${SRV_PREFIX}.${verb}${name ? `.${name}` : ''}`, '', { reply: inbox });
  await nc.flush();
  await new Promise((r) => setTimeout(r, waitMs));
  sub.unsubscribe();
  return out;
}
