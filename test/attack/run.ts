// Runs the attack table against one runtime and formats the results: one line per attempt
// ("BLOCKED  <category>  <name>  <detail>") and the runc-vs-eci comparison table in Markdown.
import { ATTEMPTS, type Attempt, type Verdict } from './attempts.ts';
import { BATCHES } from './batches.ts';
import type { AttackContext, Findings } from './context.ts';

export interface AttemptResult extends Verdict { attempt: Attempt }

export interface SuiteRun { runtime: string; results: AttemptResult[]; batchMs: Record<string, number>; totalMs: number }

/** Runs every batch (`parallel` at a time) and judges every attempt. */
export async function runSuite(c: AttackContext, parallel = 2): Promise<SuiteRun> {
  const t0 = Date.now();
  const found = new Map<string, Findings>();
  const batchMs: Record<string, number> = {};
  const queue = [...BATCHES];
  const worker = async () => {
    for (let b = queue.shift(); b; b = queue.shift()) {
      const t = Date.now();
      try {
        found.set(b.id, await b.run(c));
      } catch (e) {
        // A batch that could not run proves nothing: its attempts count as let through.
        found.set(b.id, { code: -1, out: '', err: (e as Error).message, kv: {}, refused: false });
      }
      batchMs[b.id] = Date.now() - t;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  const results = ATTEMPTS.map((attempt) => {
    const f = found.get(attempt.batch);
    if (!f) throw new Error(`attempt ${attempt.name}: no batch ${attempt.batch}`);
    return { attempt, ...attempt.judge(f, c) };
  });
  return { runtime: c.runtime, results, batchMs, totalMs: Date.now() - t0 };
}

export function verdictWord(r: AttemptResult): string {
  if (r.attempt.informational) return r.blocked ? 'INFO' : 'INFO-LEAK';
  return r.blocked ? 'BLOCKED' : 'ALLOWED';
}

/** One line per attempt, columns aligned. */
export function lines(run: SuiteRun): string[] {
  const w = (k: (r: AttemptResult) => string) => Math.max(...run.results.map((r) => k(r).length));
  const wv = w(verdictWord), wc = w((r) => r.attempt.category), wn = w((r) => r.attempt.name);
  return run.results.map((r) =>
    `${verdictWord(r).padEnd(wv)}  ${r.attempt.category.padEnd(wc)}  ${r.attempt.name.padEnd(wn)}  ${r.detail}`);
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** attempt | category | runc | eci, then the details of both runs. */
export function comparison(runc: SuiteRun, eci: SuiteRun, notes: string[]): string {
  const byName = (run: SuiteRun) => new Map(run.results.map((r) => [r.attempt.name, r]));
  const rr = byName(runc);
  // "n/a": this kernel or sandbox lacks the feature, so the attempt proves nothing about the runtime.
  const na = (r: AttemptResult) => /\(not in this kernel\)|cannot read .* here either/.test(r.detail);
  const word = (r: AttemptResult | undefined) =>
    !r ? '-' : r.attempt.informational ? (r.blocked ? 'no leak' : 'leaks (info)') : r.blocked ? (na(r) ? 'blocked (n/a here)' : 'blocked') : '**let through**';
  const out = [
    '| attempt | category | what it does | runc | eci |',
    '|---|---|---|---|---|',
    ...eci.results.map((e) => `| ${cell(e.attempt.name)} | ${e.attempt.category} | ${cell(e.attempt.what)} | ${word(rr.get(e.attempt.name))} | ${word(e)} |`),
  ];
  const count = (run: SuiteRun) => run.results.filter((r) => !r.attempt.informational && !r.blocked).length;
  const total = eci.results.filter((r) => !r.attempt.informational).length;
  return [
    `# Attack suite: plain runc vs eci`,
    '',
    `Written by test/integration/attack.test.ts on ${new Date().toISOString()}. ${total} attempts (not counting informational ones):`,
    `runc lets ${count(runc)} through, eci ${count(eci)}. Suite time: runc ${(runc.totalMs / 1000).toFixed(1)} s, eci ${(eci.totalMs / 1000).toFixed(1)} s.`,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    ...out,
    '',
    '## Details under runc',
    '',
    '```',
    ...lines(runc),
    '```',
    '',
    '## Details under eci',
    '',
    '```',
    ...lines(eci),
    '```',
    '',
  ].join('\n');
}
