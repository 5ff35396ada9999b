// A performer belongs to the listener it was started for: an fd number comes back once its listener
// closes, and that close is reported later, so a late close must not end the new listener's performer,
// and the old performer (which holds the old fd) must not serve the new listener.
import { closeSync, existsSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { closePerformer, performerFor } from '../../native/performer.ts';
import { HELPER } from '../helpers/skip.ts';

describe.skipIf(!existsSync(HELPER))('performers and fd numbers that come back', () => {
  it('a late close of the old listener leaves the new listener\'s performer alone', () => {
    const fd = openSync('/dev/null', 'r');
    const oldListener = {};
    const newListener = {};
    try {
      const a = performerFor(fd, oldListener);
      expect(a).toBeDefined();
      expect(performerFor(fd, oldListener)).toBe(a); // reused for its own listener
      const b = performerFor(fd, newListener); // the number came back for another listener
      expect(b).toBeDefined();
      expect(b).not.toBe(a);
      closePerformer(fd, oldListener); // the old listener's close, reported late
      expect(performerFor(fd, newListener)).toBe(b);
      closePerformer(fd, newListener);
      expect(performerFor(fd, newListener)).not.toBe(b);
      closePerformer(fd, newListener);
    } finally {
      closeSync(fd);
    }
  });
});
