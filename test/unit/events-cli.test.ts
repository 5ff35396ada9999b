import { describe, expect, it } from 'vitest';
import { formatEvent, parseSince, subjectFilter } from '../../cli/events.ts';
import { envelope } from '../../bus/events.ts';
import type { EciEvent } from '../../bus/schemas/v1.ts';

describe('eci events', () => {
  it('filters by container and kind', () => {
    expect(subjectFilter({})).toBe('eci.v1.evt.>');
    expect(subjectFilter({ container: 'abc' })).toBe('eci.v1.evt.container.abc.>');
    expect(subjectFilter({ container: 'abc', kind: 'vetter' })).toBe('eci.v1.evt.vetter.abc.>');
    expect(subjectFilter({ kind: 'allocator' })).toBe('eci.v1.evt.allocator.>');
    expect(() => subjectFilter({ kind: 'nope' })).toThrow(/--kind nope/);
    expect(() => subjectFilter({ container: 'a.b' })).toThrow(/not a container id/);
  });
  it('reads times and durations', () => {
    expect(parseSince('10m', 1_000_000).getTime()).toBe(1_000_000 - 600_000);
    expect(parseSince('2026-11-28T10:00:00Z').toISOString()).toBe('2026-11-28T10:00:00.000Z');
    expect(() => parseSince('yesterday')).toThrow(/expected an ISO time or a duration/);
  });
  it('prints one line per event', () => {
    const e = envelope('container.mapped', { container: '0123456789abcdef', state: 'mapped', from: 'created', uid: { hostID: 100000, size: 65536 } }) as unknown as EciEvent;
    expect(formatEvent(7, e)).toBe(`${e.ts} #7 container.mapped 0123456789ab state=mapped from=created uid={"hostID":100000,"size":65536}`);
  });
});
