// Client side of the manager's control socket (used by `eci ps` and the checks).
import { createConnection } from 'node:net';
import { EciError } from '../actors/errors.ts';

export function control<T = Record<string, unknown>>(socket: string, body: unknown, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    const chunks: Buffer[] = [];
    const t = setTimeout(() => { s.destroy(); reject(new EciError('ETIMEDOUT', `the eci manager at ${socket} did not answer within ${timeoutMs} ms`)); }, timeoutMs);
    s.on('connect', () => s.write(`CTL1\0${JSON.stringify(body)}\0`));
    s.on('data', (c) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      const z = all.indexOf(0);
      if (z < 0) return;
      clearTimeout(t);
      s.end();
      try {
        resolve(JSON.parse(all.toString('utf8', 0, z)) as T);
      } catch (e) {
        reject(new EciError('EPROTO', `bad answer from the eci manager: ${(e as Error).message}`));
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      reject(new EciError('EDOWN', `the eci manager is not reachable at ${socket} (${e.code}); start it with \`eci daemon\``, { cause: e }));
    });
  });
}
