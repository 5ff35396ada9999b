// The native fast path through Docker (issue 17): once a container's first mount went the vetter
// actor's path, its tmpfs mounts, remounts and unmounts are judged by the native watcher and performed
// by its performer directly, and the audit event says so (path 'native'); every refusal still refuses
// there (a :ro volume stays read-only, eci's mounts stay mounted), and calls the table does not cover
// (a proc mount) still take the actor's path.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { replay } from '../helpers/events.ts';

const avail = dockerdAvailable();

interface Decision { syscall: string; verdict: string; errno?: string; path?: string; fastRule?: string; answeredBy?: string; strings: Record<string, string | null>; flags?: string; reason: string }

describe.skipIf(!avail.ok)(`the native fast path through Docker${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;
  let vol: string;

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    dir = mkdtempSync('/tmp/eciw-');
    chmodSync(dir, 0o755);
    vol = join(dir, 'vol');
    mkdirSync(vol);
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs `script` in a container (SYS_ADMIN, `vol` at /v read-only) and returns its output and vetting
   * decisions: once there are as many as its calls and `complete` holds (the actor's path and the
   * native path publish in separate batches, so one path's events may come after the other's).
   */
  async function decisions(script: string, complete: (ev: Decision[]) => boolean = () => true): Promise<{ out: string; ev: Decision[] }> {
    const id = (await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', '--cap-add', 'SYS_ADMIN', '-v', `${vol}:/v:ro`, img, 'sh', '-c', script])).stdout.trim();
    await d.docker(['wait', id]);
    const out = (await d.docker(['logs', id])).stdout;
    await d.docker(['rm', id]);
    // The audit events are batched and published after the answers: wait for as many as the script made.
    const want = (out.match(/^call /gm) ?? []).length;
    const end = Date.now() + 20_000;
    let ev: Decision[] = [];
    while (Date.now() < end) {
      ev = (await replay(m.natsUrl, `eci.v1.evt.vetter.${id}.decision`)).map((e) => e.event.data as Decision);
      if (ev.length >= want && complete(ev)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return { out, ev };
  }
  const at = (ev: Decision[], syscall: string, target: string, nth = 0) => ev.filter((e) => e.syscall === syscall && e.strings.target === target)[nth];

  it('performs tmpfs mounts, remounts and unmounts of the container\'s own mounts natively, audited as such', async () => {
    const { out, ev } = await decisions([
      'mkdir -p /w /own',
      // The first vetted call goes the actor's path and pushes the table down: after the caller has its
      // answer (the performer answers it), so give the push a moment before the calls that need it.
      'echo call; mount -t tmpfs tmpfs /w; sleep 2',
      'echo call; mount -t tmpfs -o size=1m tmpfs /own && echo a > /own/f',
      'echo call; mount -t tmpfs -o remount,ro tmpfs /own; touch /own/g 2>/dev/null || echo ro-ok',
      'echo call; mount -t tmpfs -o remount,rw tmpfs /own; touch /own/g && echo rw-ok',
      'echo call; umount /own; grep -c " /own " /proc/mounts || echo umount-ok',
      'echo call; umount /w; echo done',
    ].join('; '), (ev) => at(ev, 'mount', '/w') !== undefined && at(ev, 'umount2', '/w') !== undefined && at(ev, 'mount', '/own', 2) !== undefined);
    expect(out).toContain('ro-ok');
    expect(out).toContain('rw-ok');
    expect(out).toContain('umount-ok');
    expect(out).toContain('done');
    expect(ev.length, JSON.stringify(ev)).toBeGreaterThanOrEqual(6);
    const first = at(ev, 'mount', '/w')!;
    expect(first, JSON.stringify(ev)).toMatchObject({ verdict: 'performed' });
    expect(first.path).toBeUndefined();
    expect(at(ev, 'mount', '/own', 0), JSON.stringify(ev)).toMatchObject({ verdict: 'performed', path: 'native', fastRule: 'tmpfs-mount', answeredBy: 'performer' });
    expect(at(ev, 'mount', '/own', 1), JSON.stringify(ev)).toMatchObject({ verdict: 'performed', path: 'native', fastRule: 'remount' });
    expect(at(ev, 'mount', '/own', 2), JSON.stringify(ev)).toMatchObject({ verdict: 'performed', path: 'native', fastRule: 'remount' });
    expect(at(ev, 'umount2', '/own'), JSON.stringify(ev)).toMatchObject({ verdict: 'performed', path: 'native', fastRule: 'umount' });
    expect(at(ev, 'umount2', '/w'), JSON.stringify(ev)).toMatchObject({ verdict: 'performed', path: 'native', fastRule: 'umount' });
  });

  it('still refuses on the fast path: a :ro volume stays read-only, eci\'s mounts stay mounted; a proc mount goes the actor\'s path', async () => {
    const { out, ev } = await decisions([
      'mkdir -p /w /p',
      'echo call; mount -t tmpfs tmpfs /w; sleep 2', // the table is pushed after this answer (see above)
      'echo call; mount -o remount,rw /v 2>/dev/null; echo "rw=$?"',
      'echo call; mount -t tmpfs -o remount,rw tmpfs /v 2>/dev/null; echo "rw2=$?"',
      'echo call; umount /v 2>/dev/null; echo "umount=$?"',
      'echo call; umount /etc/hosts 2>/dev/null; echo "hosts=$?"',
      'touch /v/escape 2>/dev/null && echo ESCAPED',
      'echo call; mount -t proc proc /p; echo "proc=$?"',
      'echo done',
    ].join('; '), (ev) => at(ev, 'mount', '/p') !== undefined && at(ev, 'mount', '/v', 1) !== undefined && at(ev, 'umount2', '/v') !== undefined);
    expect(out).toContain('done');
    expect(out).not.toContain('ESCAPED');
    for (const k of ['rw', 'rw2', 'umount', 'hosts']) expect(out, k).toMatch(new RegExp(`^${k}=[1-9]`, 'm'));
    expect(out).toMatch(/^proc=0/m);
    expect(readdirSync(vol)).toEqual([]);
    // The refusals were made on the fast path, by the performer, with EPERM.
    const refused = ev.filter((e) => e.verdict === 'refused');
    expect(refused.length, JSON.stringify(ev)).toBeGreaterThanOrEqual(4);
    for (const e of refused) expect(e, JSON.stringify(e)).toMatchObject({ errno: 'EPERM' });
    expect(at(ev, 'umount2', '/v'), JSON.stringify(ev)).toMatchObject({ verdict: 'refused', errno: 'EPERM', path: 'native', fastRule: 'umount' });
    expect(at(ev, 'mount', '/v', 1), JSON.stringify(ev)).toMatchObject({ verdict: 'refused', errno: 'EPERM', path: 'native', fastRule: 'remount' });
    const proc = at(ev, 'mount', '/p')!;
    expect(proc, JSON.stringify(ev)).toMatchObject({ verdict: 'performed' });
    expect(proc.path).toBeUndefined();
  });
});
