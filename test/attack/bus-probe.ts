// What an unprivileged host user tries against eci's bus: connect without credentials or with a
// guessed password, read either credentials file, then, with the observer's credentials (its own
// file if it can read it, else OBSERVER_CREDS when the caller hands a group member's copy), every
// request that would change state. Run as that user with `runuser`; prints one JSON object.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { observerCredentialsPath, OBSERVER_INBOX } from '../../bus/auth.ts';
import { identitiesPath } from '../../bus/connect.ts';

export const BUS_PROBE = `
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
const [url, observerFile, managerFile, inbox] = process.argv.slice(1);
const out = {};
const msg = (e) => (e && e.message) || String(e);
try { const nc = await connect({ servers: url, timeout: 2000 }); out.anonymous = 'connected'; await nc.close(); } catch (e) { out.anonymous = 'refused: ' + msg(e); }
try { const nc = await connect({ servers: url, timeout: 2000, user: 'manager', pass: 'guess' }); out.guess = 'connected'; await nc.close(); } catch (e) { out.guess = 'refused: ' + msg(e); }
for (const [k, f] of [['readManager', managerFile], ['readObserver', observerFile]]) {
  try { readFileSync(f); out[k] = 'ok'; } catch (e) { out[k] = e.code; }
}
const creds = out.readObserver === 'ok' ? readFileSync(observerFile, 'utf8') : process.env.OBSERVER_CREDS;
if (creds) {
  const c = JSON.parse(creds);
  const nc = await connect({ servers: url, timeout: 2000, user: c.user, pass: c.password, inboxPrefix: inbox });
  const errors = [];
  (async () => { for await (const s of nc.status()) if (s.type === 'error') errors.push(msg(s.error)); })();
  const tryReq = async (subject, data = '{}') => {
    try { const r = await nc.request(subject, data, { timeout: 1500 }); return 'answered: ' + r.string().slice(0, 200); } catch (e) { return 'refused: ' + msg(e); }
  };
  out.allocate = await tryReq('eci.v1.allocator.allocate', JSON.stringify({ container: 'squat' }));
  out.free = await tryReq('eci.v1.allocator.free', JSON.stringify({ container: 'x', index: 0 }));
  out.sysctl = await tryReq('eci.v1.sysctl.set', JSON.stringify({ container: 'made-up', key: 'fs.file-max', value: 1 }));
  out.decide = await tryReq('eci.v1.vetter.decide.x', '{}');
  out.forge = await tryReq('eci.v1.evt.container.forged.created', '{}');
  out.purge = await tryReq('$JS.API.STREAM.PURGE.ECI_EVENTS');
  out.delete = await tryReq('$JS.API.STREAM.DELETE.ECI_EVENTS');
  out.update = await tryReq('$JS.API.STREAM.UPDATE.ECI_EVENTS', JSON.stringify({ name: 'ECI_EVENTS', subjects: ['eci.v1.evt.>'], max_bytes: 1 }));
  out.kvWrite = await tryReq('$KV.eci-ranges.range.0', 'squat');
  out.info = await tryReq('$JS.API.STREAM.INFO.ECI_EVENTS');
  // Allowed by the subject (reading needs consumer creation); the manager sweeps such never-expiring ones.
  out.durable = await tryReq('$JS.API.CONSUMER.CREATE.ECI_EVENTS.squatter.eci.v1.evt.>', JSON.stringify({ stream_name: 'ECI_EVENTS', config: { durable_name: 'squatter', name: 'squatter', filter_subject: 'eci.v1.evt.>', ack_policy: 'explicit' } }));
  const sub = nc.subscribe('eci.v1.allocator.>');
  const wide = nc.subscribe('_INBOX.>');
  await nc.flush();
  await new Promise((r) => setTimeout(r, 300));
  out.subscribeErrors = errors.filter((e) => /Subscription/.test(e));
  sub.unsubscribe(); wide.unsubscribe();
  await nc.close();
}
console.log(JSON.stringify(out));
`;

export interface BusTarget { url: string; runDir: string; stateDir: string }
export type BusProbeResult = Record<string, string & string[]>;

/** Runs argv as `user` (no privileges), from `cwd` (the repo, so node finds its packages). */
export function runAs(user: string, argv: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('runuser', ['-u', user, '--', ...argv], { cwd, env: { PATH: process.env.PATH!, HOME: '/', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    c.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
    c.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stdout, stderr }); });
  });
}

/** The probe as `user` against `bus`; `observerCreds`: a group member's copy to try with. */
export async function probeBus(user: string, bus: BusTarget, repo: string, observerCreds?: string): Promise<{ code: number; stderr: string; result?: BusProbeResult }> {
  const r = await runAs(user, [process.execPath, '--input-type=module', '-e', BUS_PROBE, bus.url, observerCredentialsPath(bus.runDir), identitiesPath(bus.stateDir), OBSERVER_INBOX],
    repo, observerCreds ? { OBSERVER_CREDS: observerCreds } : {});
  const last = r.stdout.trim().split('\n').at(-1);
  let result: BusProbeResult | undefined;
  try { result = last ? JSON.parse(last) : undefined; } catch { /* below: no result */ }
  return { code: r.code, stderr: r.stderr, result };
}

export const busTarget = (url: string, managerDir: string): BusTarget => ({ url, runDir: join(managerDir, 'run'), stateDir: join(managerDir, 'state') });
