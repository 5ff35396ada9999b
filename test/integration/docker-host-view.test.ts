// The engine's path of a running container's rootfs (Docker's .../overlay2/<id>/merged) is eci's host
// view (native/cmd/eci-hostview.c): docker cp, diff and export see and do what they do under runc, the
// view keeps serving while the manager is down (kill -9) and after it restarts, and `docker rm` takes it
// down with its server.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerdAvailable, RUN_FLAGS, type Dockerd } from '../helpers/dockerd.ts';
import { startEciDocker, stopEciDocker } from '../helpers/eci-docker.ts';
import type { TestManager } from '../helpers/manager.ts';
import { runCmd } from '../helpers/run.ts';

const avail = dockerdAvailable();

/** The filesystem type of the top mount at exactly `path`, from mountinfo. */
function topFsType(path: string): string | undefined {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === path);
  const last = lines.at(-1)?.split(' ');
  return last?.[last.indexOf('-') + 1];
}

/** The pid of the eci-hostview serving `view`, if one runs. */
function viewServer(view: string): number | undefined {
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      const zombie = /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      if (!zombie && argv[0]?.endsWith('/eci-hostview') && argv.includes(view)) return Number(p);
    } catch { /* gone meanwhile */ }
  }
  return undefined;
}

async function until(what: string, probe: () => boolean | Promise<boolean>, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return;
    await sleep(50);
  }
  throw new Error(`waited ${(tries * 50) / 1000} s for ${what}`);
}

describe.skipIf(!avail.ok)(`the engine's view of a running rootfs${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let m: TestManager;
  let d: Dockerd;
  let img: string;
  let dir: string;

  beforeAll(async () => {
    ({ m, d, img } = await startEciDocker());
    dir = mkdtempSync('/tmp/ecihv-');
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    await stopEciDocker({ m, d });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves docker cp, diff and export with on-disk ids, through a manager kill -9 and restart, and goes with docker rm', async () => {
    const r = await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', 'echo x > /etc/made; echo ready; exec sleep 300']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    let merged = '';
    try {
      await until(`container ${id} to print ready`, async () => (await d.docker(['logs', id])).stdout.includes('ready'));
      merged = (await d.docker(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', id])).stdout.trim();
      expect(topFsType(merged)).toBe('fuse.eci-rootfs');
      const server = viewServer(merged);
      expect(server, `an eci-hostview serving ${merged}`).toBeDefined();

      await m.kill9();
      // With the manager down, the engine still reads and writes the running rootfs through the view.
      const src = join(dir, 'in.txt');
      writeFileSync(src, 'from-host\n');
      const cp = await d.docker(['cp', src, `${id}:/in.txt`]);
      expect(cp.code, cp.stderr).toBe(0);
      const tar = join(dir, 'export.tar');
      const exp = await d.docker(['export', '-o', tar, id]);
      expect(exp.code, exp.stderr).toBe(0);
      const list = await runCmd('tar', ['--numeric-owner', '-tvf', tar], undefined, undefined, 60_000);
      const owners = new Map(list.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)).map((f) => [f[5].replace(/^\.\//, ''), f[1]]));
      expect([owners.get('etc/made'), owners.get('in.txt')]).toEqual(['0/0', '0/0']);
      // The image's files too: none carries a host id of the container's range.
      expect([...owners.entries()].filter(([, o]) => Number(o.split('/')[0]) >= 65536)).toEqual([]);

      await m.restart();
      expect(viewServer(merged)).toBe(server); // the same server, never restarted
      const inside = await d.docker(['exec', id, 'sh', '-c', 'cat /in.txt; stat -c %u:%g /in.txt /etc/made']);
      expect(inside.stdout.split('\n').filter(Boolean), inside.stderr).toEqual(['from-host', '0:0', '0:0']);
      const diff = await d.docker(['diff', id]);
      expect(diff.stdout.split('\n').filter(Boolean).sort()).toEqual(['A /etc/made', 'A /in.txt', 'C /etc']);
    } finally {
      await d.docker(['rm', '-f', id]);
    }
    // Deleted: eci's view is unmounted and its server ends with it.
    expect(merged).not.toBe('');
    expect(topFsType(merged)).not.toBe('fuse.eci-rootfs');
    await until(`the view server of ${merged} to end after docker rm`, () => viewServer(merged) === undefined);
  });

  it('docker rm still takes the view down when its server was killed (the engine path answered ENOTCONN meanwhile)', async () => {
    const r = await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sleep', '300']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    const merged = (await d.docker(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', id])).stdout.trim();
    try {
      const server = viewServer(merged);
      expect(server, `an eci-hostview serving ${merged}`).toBeDefined();
      process.kill(server!, 'SIGKILL');
      await until(`eci-hostview ${server} to die`, () => viewServer(merged) === undefined);
      expect((await d.docker(['export', '-o', join(dir, 'dead.tar'), id])).code).not.toBe(0);
    } finally {
      const rm = await d.docker(['rm', '-f', id]);
      expect(rm.code, rm.stderr).toBe(0);
    }
    expect(topFsType(merged)).not.toBe('fuse.eci-rootfs');
    expect(m.log()).not.toMatch(/cannot unmount rootfs mounts/);
  });

  it('docker restart gets a fresh view each time, the old server gone', async () => {
    const r = await d.docker(['run', '-d', ...RUN_FLAGS, '--runtime=eci', img, 'sh', '-c', 'echo $$ >> /runs; exec sleep 300']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    try {
      const merged = (await d.docker(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', id])).stdout.trim();
      const servers = new Set<number | undefined>([viewServer(merged)]);
      for (let i = 0; i < 3; i++) {
        const rs = await d.docker(['restart', '-t', '0', id]);
        expect(rs.code, rs.stderr).toBe(0);
        expect(topFsType(merged)).toBe('fuse.eci-rootfs');
        servers.add(viewServer(merged));
      }
      expect(servers.size).toBe(4); // one server per start
      expect(servers.has(undefined)).toBe(false);
      const runs = await d.docker(['exec', id, 'sh', '-c', 'wc -l < /runs; stat -c %u /runs']);
      expect(runs.stdout.split('\n').map((l) => l.trim()).filter(Boolean), runs.stderr).toEqual(['4', '0']);
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  });
});
