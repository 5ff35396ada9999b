// eci run's manager side (cli/run/session.ts) with fake effects: replies, cleanup, and when a
// hangup (SIGHUP reported, or the client's connection lost) kills the container.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RunSession, type RunEffects } from '../../cli/run/session.ts';
import type { PreparedRun } from '../../cli/run/run.ts';
import { EciError } from '../../actors/errors.ts';

const log = pino({ level: 'silent' });
const RUN: PreparedRun = { id: 'c1', bundle: '/b/c1', layer: '/l/c1', runcRoot: '/r', pidFile: '/b/c1/pid', argv: ['/eci-runc', 'run', 'c1'] };
const req = (argv: string[], env: Record<string, string> = {}) => ({ kind: 'run' as const, cwd: '/', pid: 77, argv, env });

function fakes(o: Partial<RunEffects> = {}) {
  const calls: string[] = [];
  const fx: RunEffects = {
    prepare: async (opts, owner) => { calls.push(`prepare ${opts.image} ${opts.env.join(',')} owner=${owner}`); return RUN; },
    finish: async (run, end) => { calls.push(`finish ${run.id} ${end.status} ${end.started}`); return end.status; },
    kill: (run) => void calls.push(`kill ${run.id}`),
    owned: (_run, owner) => owner === 77,
    graceMs: 5000,
    ...o,
  };
  return { fx, calls };
}

describe('eci run session', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('parses with the client environment, answers the command line, finishes with the status', async () => {
    const { fx, calls } = fakes();
    const s = new RunSession(fx, log);
    expect(await s.start(req(['-i', '-e', 'K', 'busybox', 'true'], { K: 'from-client' }))).toEqual({ action: 'start', stdin: true, argv: RUN.argv });
    expect(await s.exit({ kind: 'run-exit', status: 7, started: true, stderrTail: '' })).toEqual({ action: 'done', status: 7 });
    s.closed();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toEqual(['prepare busybox K=from-client owner=77', 'finish c1 7 true']);
  });

  it('help and bad flags are answered without a bundle; expected errors are one eci: line, exit 125', async () => {
    const { fx, calls } = fakes({ prepare: async () => { throw new EciError('ENOIMAGE', 'no such image: x:1'); } });
    expect(await new RunSession(fx, log).start(req(['--help']))).toMatchObject({ action: 'print', status: 0, text: expect.stringContaining('Usage: eci run') });
    expect(await new RunSession(fx, log).start(req(['--bogus', 'x']))).toEqual({ action: 'fail', text: "eci: unknown flag: --bogus\nhint: see 'eci run --help'\n", status: 125 });
    expect(await new RunSession(fx, log).start(req(['x:1']))).toEqual({ action: 'fail', text: 'eci: no such image: x:1\n', status: 125 });
    expect(calls).toEqual([]);
  });

  it('a reported SIGHUP kills a container still running after the grace period; an exit in time cancels it', async () => {
    const { fx, calls } = fakes();
    const s = new RunSession(fx, log);
    await s.start(req(['busybox']));
    s.signal(15);
    s.signal(1);
    await vi.advanceTimersByTimeAsync(4999);
    expect(calls).not.toContain('kill c1');
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toContain('kill c1');

    const b = fakes();
    const t = new RunSession(b.fx, log);
    await t.start(req(['busybox']));
    t.signal(1);
    await t.exit({ kind: 'run-exit', status: 129, started: true, stderrTail: '' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(b.calls).not.toContain('kill c1');
  });

  it("the client's connection lost counts as a hangup, but a bundle made again by another client is left alone", async () => {
    const a = fakes();
    const s = new RunSession(a.fx, log);
    await s.start(req(['busybox']));
    s.closed();
    await vi.advanceTimersByTimeAsync(5000);
    expect(a.calls).toEqual(['prepare busybox  owner=77', 'kill c1']); // the bundle stays for the next run's sweep

    const b = fakes({ owned: () => false });
    const t = new RunSession(b.fx, log);
    await t.start(req(['busybox']));
    t.closed();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(b.calls).not.toContain('kill c1');
  });

  it('a client gone while its bundle was made: the run is finished at once, never started', async () => {
    let made!: () => void;
    const { fx, calls } = fakes({ prepare: () => new Promise((r) => { made = () => r(RUN); }) });
    const s = new RunSession(fx, log);
    const reply = s.start(req(['busybox']));
    await vi.advanceTimersByTimeAsync(0);
    s.closed();
    made();
    expect(await reply).toEqual({ action: 'done', status: 129 });
    expect(calls).toEqual(['finish c1 129 false']);
  });
});
