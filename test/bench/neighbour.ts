// The busy neighbour of the bench's busy pass: two shell loops burning CPU (one per core of this
// 2-core machine), started by the bench and ended by their pids, never by name.
import { spawn, type ChildProcess } from 'node:child_process';

export interface Neighbour {
  pids: number[];
  stop(): void;
}

export function startBusyNeighbour(n = 2): Neighbour {
  const kids: ChildProcess[] = Array.from({ length: n }, () => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  const pids = kids.map((k) => k.pid).filter((p): p is number => typeof p === 'number');
  if (pids.length !== n) {
    for (const p of pids) process.kill(p, 'SIGKILL');
    throw new Error('cannot start the busy neighbour (sh)');
  }
  const stop = () => {
    for (const k of kids) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL');
    process.off('exit', stop);
  };
  // Also when the bench ends some other way (a signal, a step that hangs until the process exits).
  process.on('exit', stop);
  return { pids, stop };
}

export type Pass = 'quiet' | 'busy';

/** Runs `f` once with the machine quiet and once beside the busy neighbour, which ends either way. */
export async function inBothPasses<T>(say: (l: string) => void, f: (pass: Pass) => Promise<T>, passes: readonly Pass[] = ['quiet', 'busy']): Promise<Partial<Record<Pass, T>>> {
  const out: Partial<Record<Pass, T>> = {};
  for (const pass of passes) {
    const n = pass === 'busy' ? startBusyNeighbour() : undefined;
    if (n) say(`[${pass}] neighbour pids ${n.pids.join(' ')}`);
    try {
      out[pass] = await f(pass);
    } finally {
      n?.stop();
    }
  }
  return out;
}
