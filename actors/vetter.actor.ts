// The syscall-vetter actor: answers vet requests on the bus (eci.v1.vetter.decide.<container>),
// with a per-container rate limit. Deciding is pure (vetter/decide.ts); performing and answering
// the kernel is the notification feed's job (notify-feed.ts), which holds the notify fd.
import type { NatsConnection } from '@nats-io/transport-node';
import { decide, RateLimiter, type VetRequest, type Verdict } from './vetter/decide.ts';
import { subjects } from '../bus/subjects.ts';

export const RATE_PER_SECOND = 200;
export const RATE_BURST = 400;

/** bigints travel as decimal strings. */
export const toWire = (x: unknown) => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
export const fromWire = <T>(s: string): T => JSON.parse(s, (_k, v) => (typeof v === 'string' && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v)) as T;

export class VetterActor {
  private limits = new Map<string, RateLimiter>();
  private sub?: { unsubscribe(): void };

  constructor(private nc: NatsConnection) {}

  start(): void {
    this.sub = this.nc.subscribe(subjects.vetterDecide('*'), {
      queue: 'eci-vetter',
      callback: (err, m) => {
        if (err) return;
        let verdict: Verdict;
        try {
          verdict = this.vet(fromWire<VetRequest>(m.string()));
        } catch (e) {
          verdict = { kind: 'errno', errno: 1, code: 'EPERM', reason: `malformed vet request: ${(e as Error).message}` };
        }
        m.respond(toWire(verdict));
      },
    });
  }

  vet(r: VetRequest): Verdict {
    let rl = this.limits.get(r.container);
    if (!rl) this.limits.set(r.container, (rl = new RateLimiter(RATE_PER_SECOND, RATE_BURST)));
    if (!rl.take()) return { kind: 'errno', errno: 11, code: 'EAGAIN', reason: 'rate limited: too many vetted calls from this container' };
    return decide(r);
  }

  forget(container: string): void {
    this.limits.delete(container);
  }

  stop(): void {
    this.sub?.unsubscribe();
  }
}
