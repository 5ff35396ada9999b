// A running container stays vetted across a kill -9 of the manager (issue 7): the fd-holder keeps its
// seccomp notify fd, the calls it makes while the manager is down wait in the kernel (neither allowed
// nor ENOSYS), and the restarted manager answers them and every later one: remount,rw of the :ro
// volume refused with EPERM, a tmpfs mounted, each decision audited by the new manager. Its emulated
// /proc/uptime is reattached (still container-scoped). When the container is deleted the holder
// closes its copies; with the holder gone too, the calls fail with ENOSYS as before (fail closed).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();

function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z');
  } catch {
    return false;
  }
}

/** The fds of process pid that are seccomp notify fds. */
function notifyFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((f) => {
    try { return readlinkSync(`/proc/${pid}/fd/${f}`) === 'anon_inode:seccomp notify'; } catch { return false; }
  }).length;
}

async function until<T>(f: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// One round per trigger file /ctl/goN: the vetted calls, and the results written to /ctl/outN at once.
const SCRIPT = `
for i in 1 2 3; do
  while [ ! -e /ctl/go$i ]; do sleep 0.05; done
  { r=$(mount -o remount,rw /mnt 2>&1); echo "remount=$? $r"
    mkdir -p /t$i; mount -t tmpfs tmpfs /t$i; echo "tmpfs=$?"; grep -c " /t$i " /proc/mounts
    touch /mnt/x 2>/dev/null && echo WRITABLE
    echo "uptime $(cat /proc/uptime 2>&1)"; } > /ctl/out$i.tmp 2>&1
  mv /ctl/out$i.tmp /ctl/out$i
done
sleep 300`;

describe.skipIf(!avail.ok)(`vetting across a manager restart${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  const holderPids = new Set<number>();
  const holderPid = () => Number(readFileSync(join(m.dir, 'run', 'fdholder.pid'), 'utf8'));

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    dir = mkdtempSync('/tmp/ecirv-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    for (const pid of holderPids) if (alive(pid)) process.kill(pid, 'SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts the container; returns its id and its dirs. */
  async function start(name: string) {
    const vol = join(dir, `${name}-vol`);
    const ctl = join(dir, `${name}-ctl`);
    mkdirSync(vol);
    mkdirSync(ctl);
    chmodSync(ctl, 0o777);
    const r = await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', '--cap-add', 'SYS_ADMIN',
      '-v', `${vol}:/mnt:ro`, '-v', `${ctl}:/ctl`, img, 'sh', '-c', SCRIPT]);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    const round = async (i: number, wait = true) => {
      writeFileSync(join(ctl, `go${i}`), '');
      if (!wait) return '';
      return until(() => existsSync(join(ctl, `out${i}`)) && readFileSync(join(ctl, `out${i}`), 'utf8'), 20_000, `round ${i}`);
    };
    return { id, vol, ctl, round, out: (i: number) => (existsSync(join(ctl, `out${i}`)) ? readFileSync(join(ctl, `out${i}`), 'utf8') : undefined) };
  }

  it('refuses remount,rw with EPERM and performs a tmpfs mount after kill -9 and restart, calls made during the outage included', async () => {
    const c = await start('a');
    try {
      const r1 = await c.round(1);
      expect(r1).toMatch(/^remount=[1-9]\d* mount: permission denied \(are you root\?\)/m);
      expect(r1).toMatch(/^tmpfs=0\n1$/m);
      const hpid = holderPid();
      holderPids.add(hpid);
      expect(notifyFds(hpid)).toBe(1);
      const sid = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[3]);
      expect(sid(hpid)).not.toBe(sid(m.pid()));

      await m.kill9();
      expect(alive(hpid)).toBe(true);
      // A call made now waits in the kernel: neither performed, nor refused, nor ENOSYS.
      await c.round(2, false);
      await new Promise((r) => setTimeout(r, 1500));
      expect(c.out(2)).toBeUndefined();

      const t0 = performance.now();
      await m.restart();
      const up = performance.now() - t0;
      expect(holderPid()).toBe(hpid); // the new manager found the same holder
      const r2 = await c.round(2);
      console.log(`manager restart: up in ${up.toFixed(0)} ms, the call queued during the outage answered after ${(performance.now() - t0).toFixed(0)} ms`);
      const r3 = await c.round(3);
      for (const [i, r] of [[2, r2], [3, r3]] as const) {
        expect(r, `round ${i}`).toMatch(/^remount=[1-9]\d* mount: permission denied \(are you root\?\)/m);
        expect(r, `round ${i}`).not.toMatch(/not implemented/i);
        expect(r, `round ${i}`).toMatch(/^tmpfs=0\n1$/m);
        expect(r, `round ${i}`).not.toContain('WRITABLE');
        // /proc/uptime answers again, with the container's uptime (seconds), not the host's
        const up = Number(/^uptime (\d+\.\d+) /m.exec(r)?.[1]);
        const hostUp = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
        expect(up, r).toBeLessThan(120);
        expect(hostUp - up).toBeGreaterThan(1);
      }
      expect(readdirSync(c.vol)).toEqual([]);

      // Decisions on /t2 and /t3 were made after the kill: only the new manager can have audited them.
      const ev = (await replay(m.natsUrl, `eci.v1.evt.vetter.${c.id}.decision`)).map((e) => e.event.data as { strings: Record<string, string>; verdict: string; errno?: string });
      expect(ev.filter((e) => e.strings.target === '/mnt').map((e) => [e.verdict, e.errno])).toEqual([['refused', 'EPERM'], ['refused', 'EPERM'], ['refused', 'EPERM']]);
      for (const t of ['/t1', '/t2', '/t3']) expect(ev.find((e) => e.strings.target === t), t).toMatchObject({ verdict: 'performed' });
      expect(m.log()).toMatch(/"msg":"vetting resumed"/);
      expect(m.log()).toMatch(/"target":"\/proc\/uptime","msg":"emulated file reattached"/);
    } finally {
      await d.docker(['rm', '-f', c.id]);
    }
    // Deleted: the holder closes its copy (it stays up while the manager is connected).
    const hpid = holderPid();
    await until(() => notifyFds(hpid) === 0, 10_000, 'the holder to close the notify fd');
  });

  it('fails the calls with ENOSYS (never allows them) when the holder is gone too', async () => {
    const c = await start('b');
    try {
      expect(await c.round(1)).toMatch(/^tmpfs=0\n1$/m);
      const hpid = holderPid();
      holderPids.add(hpid);
      await m.kill9();
      process.kill(hpid, 'SIGKILL');
      await until(() => !alive(hpid), 5000, 'the holder to die');
      const r2 = await c.round(2);
      expect(r2).toMatch(/^remount=[1-9]\d* .*not implemented/im);
      expect(r2).toMatch(/^tmpfs=[1-9]\d*\n0$/m);
      expect(readdirSync(c.vol)).toEqual([]);
      await m.restart();
      holderPids.add(holderPid());
    } finally {
      await d.docker(['rm', '-f', c.id]);
    }
  });
});
