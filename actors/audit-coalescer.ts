// Bounds what one container can write to the audit trail (pure; the clock is passed in). Per
// container and one-second window, the first `identicalPerSecond` identical decisions and the first
// `decisionsPerSecond` decisions in all go out one by one; the rest are counted, and when the window
// ends each kind (syscall, verdict, errno) that was counted becomes one summary event with the count.
// So a container adds at most decisionsPerSecond + (kinds it used) events per second, however fast
// it calls (rate-limited calls included).

export interface CoalesceLimits { identicalPerSecond: number; decisionsPerSecond: number }

/** What became of a vetted call (as in vetter.decision events). */
type Verdict = 'performed' | 'refused' | 'continued';

export const DEFAULT_COALESCE_LIMITS: CoalesceLimits = { identicalPerSecond: 5, decisionsPerSecond: 20 };

/** The fields of a vetter.decision that say what was decided (not when, by whom, or how fast). */
export interface Decision {
  container: string; syscall: string; verdict: Verdict; errno?: string; reason: string;
  strings?: Record<string, string | null>; flags?: string;
}

/** Data of a `vetter.decisions-coalesced` event. */
export interface CoalescedDecisions {
  container: string; syscall: string; verdict: Verdict; errno?: string;
  /** The reason of the first decision counted (others of the same kind may differ in detail). */
  reason: string;
  count: number;
  /** The first and last decision counted (ISO times). */
  from: string; to: string;
}

interface Window {
  start: number;
  kept: number;
  identical: Map<string, number>;
  counted: Map<string, CoalescedDecisions>;
}

export class AuditCoalescer {
  private windows = new Map<string, Window>();
  private ended: CoalescedDecisions[] = [];

  constructor(private limits: () => CoalesceLimits = () => DEFAULT_COALESCE_LIMITS, readonly windowMs = 1000) {}

  /** True: publish this decision as it is. False: it was counted into a summary. */
  offer(d: Decision, now: number): boolean {
    let w = this.windows.get(d.container);
    if (w && now >= w.start + this.windowMs) {
      this.close(d.container, w);
      w = undefined;
    }
    if (!w) {
      w = { start: now, kept: 0, identical: new Map(), counted: new Map() };
      this.windows.set(d.container, w);
    }
    const l = this.limits();
    const same = JSON.stringify([d.syscall, d.verdict, d.errno ?? null, d.reason, d.strings ?? null, d.flags ?? null]);
    const n = w.identical.get(same) ?? 0;
    if (n < l.identicalPerSecond && w.kept < l.decisionsPerSecond) {
      w.identical.set(same, n + 1);
      w.kept++;
      return true;
    }
    const kind = JSON.stringify([d.syscall, d.verdict, d.errno ?? null]);
    const at = new Date(now).toISOString();
    const s = w.counted.get(kind);
    if (s) {
      s.count++;
      s.to = at;
    } else {
      w.counted.set(kind, {
        container: d.container, syscall: d.syscall, verdict: d.verdict, ...(d.errno !== undefined ? { errno: d.errno } : {}),
        reason: d.reason, count: 1, from: at, to: at,
      });
    }
    return false;
  }

  /** The summaries of every window that ended by `now` (Infinity: all, e.g. at stop). */
  due(now: number): CoalescedDecisions[] {
    for (const [c, w] of this.windows) if (now >= w.start + this.windowMs) this.close(c, w);
    return this.ended.splice(0);
  }

  /** A container is gone: its window ends now (what it counted is due). */
  forget(container: string): void {
    const w = this.windows.get(container);
    if (w) this.close(container, w);
  }

  /** When the earliest window with counted decisions ends (for a timer); undefined if none. */
  nextDue(): number | undefined {
    if (this.ended.length) return 0;
    let t: number | undefined;
    for (const w of this.windows.values()) if (w.counted.size && (t === undefined || w.start + this.windowMs < t)) t = w.start + this.windowMs;
    return t;
  }

  private close(container: string, w: Window): void {
    this.windows.delete(container);
    this.ended.push(...w.counted.values());
  }
}
