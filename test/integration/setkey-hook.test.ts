// eci-setkey (native/cmd/eci-setkey.c) against a listener standing in for dockerd's libnetwork
// socket, side by side with Docker's own hook (the dockerd binary run as `libnetwork-setkey`): the
// same request bytes, the same verdicts. Through a real dockerd: test/integration/docker.test.ts.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setkeyPath } from '../../native/launcher.ts';

const DOCKERD = '/usr/sbin/dockerd';
const CID = 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f';
const CTL = '0123456789ab';

interface Ran { code: number | null; stderr: string }

function hook(bin: string, argv0: string, args: string[], stdin: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, args, { argv0, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (b: Buffer) => (stderr += b));
    c.once('error', reject);
    c.stdin.on('error', () => {}); // a refused command line exits before reading its state (EPIPE)
    c.once('close', (code) => resolve({ code, stderr }));
    c.stdin.end(stdin);
  });
}

describe.skipIf(!existsSync(setkeyPath()))('eci-setkey', () => {
  let dir: string;
  let server: Server;
  let answer = 'success';
  const got: string[] = [];
  const eci = (args: string[], stdin: string) => hook(setkeyPath(), 'eci-setkey', args, stdin);
  const docker = (args: string[], stdin: string) => hook(DOCKERD, 'libnetwork-setkey', args, stdin);
  const args = () => [`-exec-root=${dir}`, CID, CTL];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eci-setkey-'));
    mkdirSync(join(dir, 'libnetwork'));
    server = createServer((s) => s.once('data', (b) => { got.push(b.toString()); s.end(answer); }));
    await new Promise<void>((r) => server.listen(join(dir, 'libnetwork', `${CTL}.sock`), r));
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends the container's netns from the state's top-level pid, as Docker's hook does, and exits 0 on success", async () => {
    // runc's state, with annotations that name a pid too (ahead of the real one): only the top level counts.
    const state = JSON.stringify({ ociVersion: '1.0.2-dev', id: CID, annotations: { pid: '99', note: '"pid":7' }, status: 'creating', pid: 4321, bundle: '/b' });
    got.length = 0;
    expect(await eci(args(), state)).toEqual({ code: 0, stderr: '' });
    expect(got).toEqual([`{"ContainerID":"${CID}","Key":"/proc/4321/ns/net"}`]);
    if (existsSync(DOCKERD)) {
      expect((await docker(args(), state)).code).toBe(0);
      expect(got[1]).toBe(got[0]); // byte for byte what dockerd's own hook sends
    }
  });

  it("fails with the daemon's answer when it is not success", async () => {
    answer = 'failed to set key: no such sandbox';
    try {
      const r = await eci(args(), '{"pid":12}');
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe('failed to set key: no such sandbox');
      if (existsSync(DOCKERD)) expect((await docker(args(), '{"pid":12}')).code).toBe(1);
    } finally {
      answer = 'success';
    }
  });

  it('fails with one line when the daemon is not listening, the state has no pid, or the command line is not the known one', async () => {
    const none = await eci([`-exec-root=${dir}/none`, CID, CTL], '{"pid":12}');
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(`eci-setkey: dial unix ${dir}/none/libnetwork/${CTL}.sock: connect: no such file or directory\n`);
    for (const state of ['{"id":"x"}', '{"annotations":{"pid":5}}', 'not json', '']) {
      const r = await eci(args(), state);
      expect([r.code, r.stderr]).toEqual([1, 'eci-setkey: the state on stdin has no pid\n']);
    }
    for (const bad of [[CID, CTL], ['-sock', `${dir}/x.sock`], [`-exec-root=${dir}`, 'a"b', CTL], [`-exec-root=${dir}`, CID, '../x'], ['-exec-root=rel', CID, CTL]]) {
      const r = await eci(bad, '{"pid":12}');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^eci-setkey: [^\n]+\n$/);
    }
  });
});
