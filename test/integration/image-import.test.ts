// `eci image import` many at once (issue 18): each import settles with its name or one `eci:` line,
// never Node's silent exit 13, and a failed one leaves nothing in its store. No manager is needed:
// each import has a private ECI_STATE_DIR. Also: the CLI as a whole never ends without a message.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTarball } from '../helpers/busybox.ts';
import { REPO } from '../helpers/manager.ts';
import { runCmd, type RunResult } from '../helpers/run.ts';

const root = process.getuid?.() === 0;
const ECI = join(REPO, 'bin/eci');
const MANY = 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!root)(`eci image import, many at once${root ? '' : ' (skipped: needs root)'}`, () => {
  let dir: string;
  let tarGz: string;
  let layout: string;
  const eci = (args: string[], stateDir: string): Promise<RunResult> =>
    runCmd(process.execPath, [ECI, ...args], { ...process.env, ECI_STATE_DIR: stateDir }, undefined, 180_000);
  const state = (name: string) => join(dir, 'state', name);
  const storeEntries = (s: string) => (existsSync(join(s, 'images')) ? readdirSync(join(s, 'images')) : []);

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/eci-import-');
    chmodSync(dir, 0o755);
    const tar = readFileSync(await makeBusyboxTarball(join(dir, 'bb.tar')));
    // No padding after the end marker: tar exits while gunzip still reads the trailer (the race of issue 18).
    tarGz = join(dir, 'bb.tar.gz');
    writeFileSync(tarGz, gzipSync(tar));
    // An OCI layout of one gzip layer.
    layout = join(dir, 'layout');
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    const blob = (b: Buffer) => { writeFileSync(join(layout, 'blobs', 'sha256', sha(b)), b); return `sha256:${sha(b)}`; };
    const layer = gzipSync(tar);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [] } }));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blob(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob(layer), size: layer.length }],
    }));
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: blob(manifest), size: manifest.length }] }));
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${MANY} imports of one .tar.gz and ${MANY} of one OCI layout at once: each exits 0 with its name, and is listed`, async () => {
    const jobs = [...Array(MANY).keys()].flatMap((i) => [
      { src: tarGz, name: `tgz${i}`, s: state(`tgz${i}`) },
      { src: layout, name: `oci${i}`, s: state(`oci${i}`) },
    ]);
    const results = await Promise.all(jobs.map((j) => eci(['image', 'import', j.src, j.name], j.s)));
    // Every status and message, so a failure names which import and how it ended.
    expect(results.map((r, i) => `${jobs[i].name}: ${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`))
      .toEqual(jobs.map((j) => `${j.name}: 0 ${j.name}:latest `));
    for (const j of jobs) {
      const ls = await eci(['image', 'ls', '--json'], j.s);
      expect(ls.code, ls.stderr).toBe(0);
      expect((JSON.parse(ls.stdout) as { name: string; tag: string }[]).map((i) => `${i.name}:${i.tag}`)).toEqual([`${j.name}:latest`]);
      expect(storeEntries(j.s)).toEqual([j.name]); // no .tmp-* left
    }
  }, 600_000);

  it(`${MANY} corrupt imports at once: each one 'eci:' line, status 1, nothing left in its store`, async () => {
    const truncated = join(dir, 'truncated.tar.gz');
    writeFileSync(truncated, readFileSync(tarGz).subarray(0, 40_000));
    const jobs = [...Array(MANY).keys()].map((i) => ({ name: `bad${i}`, s: state(`bad${i}`) }));
    const results = await Promise.all(jobs.map((j) => eci(['image', 'import', truncated, j.name], j.s)));
    for (const [i, r] of results.entries()) {
      expect(r.code, `${jobs[i].name}: ${r.stderr}`).toBe(1);
      expect(r.stderr.trim().split('\n'), jobs[i].name).toHaveLength(1);
      expect(r.stderr).toMatch(/^eci: .*truncated\.tar\.gz: /);
      expect(storeEntries(jobs[i].s)).toEqual([]);
    }
  }, 600_000);

  it('a command whose work can never settle ends with one eci: line and status 1, not a silent 13', async () => {
    const cli = join(REPO, 'dist', 'bin', 'eci.js');
    const script = (work: string) => `import { sayIfUnsettled } from ${JSON.stringify(cli)};\nawait sayIfUnsettled(${work});\n`;
    writeFileSync(join(dir, 'never.mjs'), script('new Promise(() => {})'));
    writeFileSync(join(dir, 'settles.mjs'), script('new Promise((r) => setImmediate(r)).then(() => console.log("done"))'));
    const never = await runCmd(process.execPath, [join(dir, 'never.mjs')], process.env, undefined, 60_000);
    expect([never.code, never.stdout, never.stderr]).toEqual([1, '', 'eci: internal error: the command ended before it finished (a bug: it waited for an event that never came)\n']);
    const settles = await runCmd(process.execPath, [join(dir, 'settles.mjs')], process.env, undefined, 60_000);
    expect([settles.code, settles.stdout, settles.stderr]).toEqual([0, 'done\n', '']);
  }, 120_000);
});
