import { describe, expect, it } from 'vitest';
import { envelope } from '../../bus/events.ts';
import { SchemaError, validateEvent } from '../../bus/schemas/v1.ts';
import { subjects, SubjectTokenError, token } from '../../bus/subjects.ts';

describe('subjects', () => {
  it('builds versioned subjects, general to specific', () => {
    expect(subjects.containerEvent('abc', 'running')).toBe('eci.v1.evt.container.abc.running');
    expect(subjects.containerEvents()).toBe('eci.v1.evt.container.*.>');
    expect(subjects.allocatorEvent('allocated')).toBe('eci.v1.evt.allocator.allocated');
  });
  it('refuses tokens that would change the subject', () => {
    for (const bad of ['a.b', 'a*', '>', 'a b', '', '$x']) expect(() => token(bad)).toThrow(SubjectTokenError);
  });
});

describe('event envelopes', () => {
  it('round-trips through the validator, with monotonic ulids', () => {
    const a = envelope('container.created', { container: 'c', state: 'created' });
    const b = envelope('container.mapped', { container: 'c', state: 'mapped', from: 'created', uid: { hostID: 100000, size: 65536 } });
    expect(a.id < b.id).toBe(true);
    expect(validateEvent(JSON.parse(JSON.stringify(b)))).toEqual(b);
  });
  it('names the bad field', () => {
    const e = envelope('container.created', { container: 'c', state: 'created' });
    expect(() => validateEvent({ ...e, v: 2 })).toThrow('event.v: expected 1, got 2');
    expect(() => validateEvent({ ...e, id: 'x' })).toThrow('event.id: expected a ulid');
    expect(() => validateEvent({ ...e, data: { container: 'c', state: 'running' } })).toThrow(SchemaError);
    expect(() => validateEvent({ ...e, type: 'nope' })).toThrow(/unknown type/);
    expect(() => validateEvent(envelope('allocator.allocated', { container: 'c' }))).toThrow(/expected \{container,index,uid,gid\}/);
  });
});
