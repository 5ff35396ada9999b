// The syscall-vetter actor: answers vet requests on the bus (eci.v1.vetter.decide.<container>),
// paced per container (over budget, a call waits; it is never failed for it). Deciding is pure
// (vetter/decide.ts); performing and answering the kernel is the notification feed's job
// (notify-feed.ts), which holds the notify fd.
import { decide, type VetRequest, type Verdict } from './vetter/decide.ts';
import { Pacer } from './vetter/pace.ts';
import { subjects } from '../bus/subjects.ts';
import { BadRequestError, serve, type ServeConnection } from '../bus/serve.ts';

export const RATE_PER_SECOND = 200;
export const RATE_BURST = 400;

/** bigints travel as decimal strings. */
export const toWire = (x: unknown) => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
export const fromWire = <T>(s: string): T => JSON.parse(s, (_k, v) => (typeof v === 'string' && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v)) as T;

export class VetterActor {
  private limits = new Map<string, Pacer>();
  private sub?: { unsubscribe(): void };

  /** `now`: the pacing clock (ms), for tests. */
  constructor(private nc: ServeConnection, private readonly now: () => number = () => performance.now()) {}

  start(): void {
    this.sub = serve<VetRequest, Verdict>(this.nc, {
      subject: subjects.vetterDecide('*'), queue: 'eci-vetter',
      decode: (text) => fromWire<VetRequest>(text),
      handle: (r) => this.vet(r),
      encode: (v) => toWire(v),
      // The asker answers a syscall with what it gets: a failure is a refusal (fail closed), not {ok:false}.
      onError: (e): Verdict => ({ kind: 'errno', errno: 1, code: 'EPERM', reason: `malformed vet request: ${e instanceof BadRequestError ? e.detail : (e as Error).message}` }),
    });
  }

  /** The verdict at once within the container's budget; past it, after the call's turn has come. */
  vet(r: VetRequest): Verdict | Promise<Verdict> {
    const wait = this.pacer(r.container).reserve();
    if (wait <= 0) return decide(r);
    return new Promise((resolve) => setTimeout(() => resolve(decide(r)), wait));
  }

  /**
   * Counts a call that took the native fast path (which keeps the same budget itself) against the
   * container's budget, so that its calls on this path wait as if it had come here.
   */
  charge(container: string): void {
    this.pacer(container).reserve();
  }

  private pacer(container: string): Pacer {
    let p = this.limits.get(container);
    if (!p) this.limits.set(container, (p = new Pacer(RATE_PER_SECOND, RATE_BURST, this.now)));
    return p;
  }

  forget(container: string): void {
    this.limits.delete(container);
  }

  stop(): void {
    this.sub?.unsubscribe();
  }
}
