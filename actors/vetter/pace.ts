// Flood control for vetted calls: a container past its budget is slowed, never failed. Real programs
// do not retry an EAGAIN from mount(2), so an over-budget call waits for its turn instead (generic
// cell rate algorithm: a burst passes at once, then one call per 1/rate seconds). The wait is the
// caller's own thread sitting in the syscall; other containers have budgets of their own.

export class Pacer {
  /** When the next call would be on schedule if calls came exactly at the rate (ms, `now`'s clock). */
  private tat: number;
  private readonly interval: number;

  constructor(perSecond: number, private readonly burst: number, private readonly now: () => number = () => performance.now()) {
    this.interval = 1000 / perSecond;
    this.tat = now();
  }

  /** Takes the next slot: how long (ms) this call must wait before it goes on; 0 within the budget. */
  reserve(): number {
    const t = this.now();
    const tat = Math.max(this.tat, t);
    const wait = Math.max(0, tat - (this.burst - 1) * this.interval - t);
    this.tat = tat + this.interval;
    return wait;
  }
}
