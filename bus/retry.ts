// KV writes that must land (a container record, a released range) are retried while the bus is
// down instead of being dropped: a lost write would leave KV disagreeing with the world.

export interface RetryOptions {
  /** Stop retrying (the manager is stopping); the last error is thrown. */
  cancelled?: () => boolean;
  /** Called once, on the first failure. */
  onFirstFailure?: (e: unknown) => void;
  firstDelayMs?: number;
  maxDelayMs?: number;
}

export async function retryUntilDone<T>(f: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  let delay = o.firstDelayMs ?? 100;
  for (let attempt = 0; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      if (attempt === 0) o.onFirstFailure?.(e);
      if (o.cancelled?.()) throw e;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, o.maxDelayMs ?? 2000);
    }
  }
}
