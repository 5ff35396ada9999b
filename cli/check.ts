// `eci check`: runs every isolation property against the live system, through the configured
// Docker engine or, with no engine, through `eci run`, and prints property / expected / observed /
// pass. Exit status 1 on any failure. The same flags go to both (eci run speaks Docker's).
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CheckOptions {
  /** docker (default) or eci (eci run: no engine). */
  engine?: 'docker' | 'eci';
  docker: string; // client binary
  host?: string; // DOCKER_HOST
  runtime: string;
  image: string;
  /** For engine eci: how to call `eci run` (argv up to and including "run") and its environment. */
  eci?: { argv: string[]; env?: Record<string, string> };
  out: (line: string) => void;
}

/** Whether a Docker engine answers at o.host (or the default socket) within 5 s. */
export function dockerReachable(o: Pick<CheckOptions, 'docker' | 'host'>): Promise<boolean> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...(o.host ? { DOCKER_HOST: o.host } : {}) };
    execFile(o.docker, ['version', '--format', '{{.Server.Version}}'], { env, timeout: 5_000 }, (err) => resolve(!err));
  });
}

/** The command line for one check container: `docker run --rm --runtime=R ...` or `eci run ...`. */
export function checkCommand(o: CheckOptions, args: string[], network = ['--network', 'none']): { bin: string; argv: string[]; env: NodeJS.ProcessEnv } {
  if (o.engine === 'eci') {
    if (!o.eci) throw new Error('check: engine eci needs the eci run command');
    return { bin: o.eci.argv[0], argv: [...o.eci.argv.slice(1), '--rm', ...network, ...args], env: { ...process.env, ...o.eci.env } };
  }
  return { bin: o.docker, argv: ['run', '--rm', ...network, `--runtime=${o.runtime}`, ...args], env: { ...process.env, ...(o.host ? { DOCKER_HOST: o.host } : {}) } };
}

export interface CheckResult { property: string; expected: string; observed: string; pass: boolean }

function dockerRun(o: CheckOptions, args: string[], network?: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = checkCommand(o, args, network);
    execFile(c.bin, c.argv, { env: c.env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const norm = (s: string) => s.trim().split(/\s+/).join(' ');
// The line that says why: eci's own message if the engine printed one (Docker may add noise such as
// "error waiting for container" after it), else the last line.
const firstLine = (s: string) =>
  ((ls) => ls.find((l) => /eci/.test(l)) ?? ls.at(-1))(s.trim().split('\n').filter((l) => !l.startsWith('time="')))?.replace(/^docker: Error response from daemon: /, '').replace(/^eci: /, '').replace(/^failed to create shim task: OCI runtime create failed: /, '').replace(/: unknown\.?$/, '').slice(0, 100) ?? '';

export async function runChecks(o: CheckOptions): Promise<CheckResult[]> {
  const dir = mkdtempSync('/tmp/eci-check-');
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'f'), 'x');
  const results: CheckResult[] = [];
  const add = (property: string, expected: string, observed: string, pass: boolean) => {
    results.push({ property, expected, observed, pass });
  };
  try {
    const map = await dockerRun(o, [o.image, 'cat', '/proc/self/uid_map']);
    const m = /^0 (\d+) 65536$/.exec(norm(map.stdout));
    add('own user namespace, exclusive range', '0 <pool id> 65536', norm(map.stdout) || firstLine(map.stderr), !!m && Number(m[1]) >= 100000);

    const host = await dockerRun(o, ['--userns=host', o.image, 'cat', '/proc/self/uid_map']);
    add('--userns=host ignored', 'a mapped range', norm(host.stdout) || firstLine(host.stderr), /^0 [1-9]\d* 65536$/.test(norm(host.stdout)));

    for (const ns of ['pid', 'ipc', 'uts']) {
      const r = await dockerRun(o, [`--${ns}=host`, o.image, 'true']);
      add(`--${ns}=host refused`, 'refused', r.code ? firstLine(r.stderr) : 'ran', r.code !== 0 && r.stderr.includes(`share namespaces [${ns}]`));
    }
    const net = await dockerRun(o, [o.image, 'true'], ['--network=host']);
    add('--network=host refused', 'refused', net.code ? firstLine(net.stderr) : 'ran', net.code !== 0 && net.stderr.includes('share a network namespace'));

    const restricted = await dockerRun(o, ['-v', '/proc/sys:/mnt', o.image, 'true']);
    add('restricted host path refused', 'refused', restricted.code ? firstLine(restricted.stderr) : 'mounted', restricted.code !== 0 && restricted.stderr.includes('restricted host mount'));

    const ro = await dockerRun(o, ['--cap-add', 'SYS_ADMIN', '-v', `${dir}:/mnt:ro`, o.image, 'sh', '-c', 'mount -o remount,rw /mnt && touch /mnt/w']);
    add(':ro volume stays read-only', 'remount refused', ro.code ? firstLine(ro.stderr) : 'became writable', ro.code !== 0);

    const vol = await dockerRun(o, ['-v', `${dir}:/v`, o.image, 'sh', '-c', 'echo y > /v/g && stat -c %u /v/g']);
    let disk = -1;
    try { disk = statSync(join(dir, 'g')).uid; } catch { /* not written */ }
    add('volume files owned 0..65535 on disk', 'uid 0 inside and on disk', `inside ${vol.stdout.trim() || '?'}, disk ${disk}`, vol.stdout.trim() === '0' && disk === 0);

    const suid = await dockerRun(o, ['-v', `${dir}:/v`, o.image, 'chmod', 'u+s', '/v/f']);
    add('setuid on a volume refused', 'EPERM', suid.code ? firstLine(suid.stderr) : 'set', suid.code !== 0);

    const priv = await dockerRun(o, ['--privileged', o.image, 'mknod', '/tmp/eci-loop', 'b', '7', '0']);
    add('privileged stays contained', 'mknod refused', priv.code ? firstLine(priv.stderr) : 'mknod worked', priv.code !== 0 && /ermission denied|not permitted/.test(priv.stderr));

    const up = await dockerRun(o, [o.image, 'cat', '/proc/uptime']);
    const cUp = Number(up.stdout.split(' ')[0]);
    const hUp = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    add('/proc/uptime is the container\'s', `< 30 s (host ${hUp.toFixed(0)} s)`, up.stdout.trim() || firstLine(up.stderr), cUp < 30 && hUp - cUp > 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

export function formatChecks(r: CheckResult[]): string[] {
  const rows = [['PROPERTY', 'EXPECTED', 'OBSERVED', 'PASS'], ...r.map((x) => [x.property, x.expected, x.observed, x.pass ? 'yes' : 'NO'])];
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return [...rows.map((row) => row.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()),
    `${r.filter((x) => x.pass).length} passed, ${r.filter((x) => !x.pass).length} failed`];
}
