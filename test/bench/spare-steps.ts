// The per-step cost of a performer's spare run (issue 17), from the lines a spare built with
// -DECI_SPARE_TIMING writes (native/cmd/spare-timing.h). Not part of `npm run bench`; by hand:
//   rm -f native/obj/*.o && make -C native CFLAGS="-O2 -Wall -Wextra -Werror -D_GNU_SOURCE -DECI_SPARE_TIMING"
//   rm -f /tmp/eci-spare-timing.log; ECI_BENCH_ONLY=issue17 ECI_BENCH_ROWS=mount ECI_BENCH_PASSES=quiet npm run -s bench
//   npx tsx test/bench/spare-steps.ts [/tmp/eci-spare-timing.log]
// then rebuild without the define (rm -f native/obj/*.o && make -C native).
import { readFileSync } from 'node:fs';

/** p50, p90, mean (us) and the sum (ms) of each step between consecutive marks, over every run's line. */
export function spareSteps(text: string): { step: string; n: number; p50: number; p90: number; mean: number; sumMs: number }[] {
  const steps = new Map<string, number[]>();
  const add = (k: string, v: number) => { const a = steps.get(k) ?? []; a.push(v); steps.set(k, a); };
  for (const line of text.split('\n')) {
    const marks = line.trim().split(/\s+/).filter(Boolean).map((kv) => kv.split('=') as [string, string]);
    // A mark is "<ns>" or, with -DECI_SPARE_FAULTS, "<ns>,<minor faults so far>" (faults per step then).
    const at = marks.filter(([k]) => k !== 'minflt' && k !== 'rc').map(([k, v]) => [k, Number(v.split(',')[0]) / 1000, v.split(',')[1]] as const);
    for (let i = 1; i < at.length; i++) {
      add(`${at[i - 1]![0]}->${at[i]![0]}`, at[i]![1] - at[i - 1]![1]);
      if (at[i]![2] !== undefined) add(`  faults ${at[i - 1]![0]}->${at[i]![0]}`, Number(at[i]![2]) - Number(at[i - 1]![2]));
    }
    const sys = at.find(([k]) => k === 'syscall');
    if (sys) add('request->syscall', sys[1]);
    const f = marks.find(([k]) => k === 'minflt');
    if (f) add('minor faults (count)', Number(f[1]));
  }
  const q = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * p))]!;
  return [...steps].map(([step, v]) => ({ step, n: v.length, p50: q(v, 0.5), p90: q(v, 0.9), mean: v.reduce((a, b) => a + b, 0) / v.length, sumMs: v.reduce((a, b) => a + b, 0) / 1000 }));
}

if (process.argv[1]?.endsWith('spare-steps.ts')) {
  const rows = spareSteps(readFileSync(process.argv[2] ?? '/tmp/eci-spare-timing.log', 'utf8'));
  console.log(`${'step (us)'.padEnd(28)} ${'n'.padStart(5)} ${'p50'.padStart(7)} ${'p90'.padStart(7)} ${'mean'.padStart(7)} ${'sum ms'.padStart(8)}`);
  for (const r of rows) console.log(`${r.step.padEnd(28)} ${String(r.n).padStart(5)} ${r.p50.toFixed(1).padStart(7)} ${r.p90.toFixed(1).padStart(7)} ${r.mean.toFixed(1).padStart(7)} ${r.sumMs.toFixed(1).padStart(8)}`);
}
