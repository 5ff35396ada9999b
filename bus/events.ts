// Builds event envelopes. ulids are monotonic within this process, so ids sort in publish order.
import { monotonicFactory } from 'ulid';
import type { Envelope } from './schemas/v1.ts';

const nextId = monotonicFactory();

export function envelope<T extends string, D>(type: T, data: D, now = Date.now()): Envelope<T, D> {
  return { v: 1, type, id: nextId(now), ts: new Date(now).toISOString(), data };
}
