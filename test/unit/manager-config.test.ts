// The manager's environment settings: defaults, and a clear ECONFIG for a bad value.
import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../actors/config.ts';

describe('configFromEnv', () => {
  it('takes the defaults from an empty environment', () => {
    const c = configFromEnv({});
    expect(c).toMatchObject({ runDir: '/run/eci', stateDir: '/var/lib/eci', socket: '/run/eci/eci.sock', natsPort: 14222, schedSliceUs: 100, setkeyHook: 'eci', nativeStart: true, range: undefined });
  });

  it('takes a vetted-call slice of 0 (the kernel default) or 100..100000 us', () => {
    expect(configFromEnv({ ECI_SCHED_SLICE_US: '0' }).schedSliceUs).toBe(0);
    expect(configFromEnv({ ECI_SCHED_SLICE_US: '250' }).schedSliceUs).toBe(250);
    expect(configFromEnv({ ECI_SCHED_SLICE_US: '100000' }).schedSliceUs).toBe(100_000);
  });

  it('runs fast-path calls in the performer\'s lane unless ECI_PERFORM_LANE=0', () => {
    expect(configFromEnv({}).performLane).toBe(true);
    expect(configFromEnv({ ECI_PERFORM_LANE: '0' }).performLane).toBe(false);
  });

  it("lets Docker's own libnetwork-setkey hook run with ECI_SETKEY_HOOK=docker", () => {
    expect(configFromEnv({ ECI_SETKEY_HOOK: 'docker' }).setkeyHook).toBe('docker');
    expect(configFromEnv({ ECI_SETKEY_HOOK: 'eci' }).setkeyHook).toBe('eci');
  });

  it.each([
    ['ECI_NATIVE_START', 'yes', 'ECI_NATIVE_START=yes: expected an integer from 0 to 1'],
    ['ECI_PERFORM_LANE', '2', 'ECI_PERFORM_LANE=2: expected an integer from 0 to 1'],
    ['ECI_SETKEY_HOOK', 'dockerd', 'ECI_SETKEY_HOOK=dockerd: expected eci or docker'],
    ['ECI_SCHED_SLICE_US', '50', 'ECI_SCHED_SLICE_US=50: expected 0 (the kernel\'s slice) or 100 to 100000'],
    ['ECI_SCHED_SLICE_US', 'fast', 'ECI_SCHED_SLICE_US=fast: expected an integer from 0 to 100000'],
    ['ECI_SCHED_SLICE_US', '200000', 'ECI_SCHED_SLICE_US=200000: expected an integer from 0 to 100000'],
    ['ECI_NATS_PORT', '70000', 'ECI_NATS_PORT=70000: expected an integer from 1 to 65535'],
    ['ECI_UID_SIZE', '1000', 'ECI_UID_SIZE=1000: expected an integer from 65536'],
  ])('refuses %s=%s with one line naming it', (k, v, message) => {
    expect(() => configFromEnv({ [k]: v })).toThrow(message);
  });
});
