import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { applyLayer } from '../../cli/images/layers.ts';
import { Progress, progressLine } from '../../cli/images/progress.ts';
import { defaultName, feed } from '../../cli/images/import.ts';
import { ImageStore, parseImageRef } from '../../cli/images/store.ts';
import { isDynamicElf } from '../../cli/images/busybox.ts';

const dirs: string[] = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'eci-img-')); dirs.push(d); return d; };
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('parseImageRef', () => {
  it("follows Docker's name and tag rules; latest by default", () => {
    expect(parseImageRef('busybox')).toEqual({ name: 'busybox', tag: 'latest' });
    expect(parseImageRef('my.org/app-x:1.2_b')).toEqual({ name: 'my.org/app-x', tag: '1.2_b' });
    expect(() => parseImageRef('Upper')).toThrow('invalid image name "Upper"');
    expect(() => parseImageRef('a:b:c')).toThrow(/invalid image/);
    expect(() => parseImageRef('../x')).toThrow(/invalid image name/);
    expect(() => parseImageRef('x:')).toThrow('invalid image tag ""');
  });
  it('stores names without ":" or "," (overlay option separators)', () => {
    const s = new ImageStore('/s');
    expect(s.rootfs(parseImageRef('my.org/app:v1'))).toBe('/s/images/my.org+app/v1/rootfs');
    expect(defaultName('/x/Alpine 3.19.tar.gz')).toBe('alpine-3.19');
  });
});

describe('ImageStore commit/remove', () => {
  it('renames a finished import into place, refuses a second one and removes it whole', () => {
    const st = new ImageStore(tmp());
    const ref = parseImageRef('a:1');
    const t = st.begin();
    mkdirSync(join(t, 'rootfs'));
    writeFileSync(join(t, 'image.json'), JSON.stringify({ name: 'a', tag: '1', source: 'x', created: '', size: 0, config: {} }));
    st.commit(t, ref);
    expect(st.list().map((i) => `${i.name}:${i.tag}`)).toEqual(['a:1']);
    const t2 = st.begin();
    expect(() => st.commit(t2, ref)).toThrow('image a:1 already exists');
    expect(() => st.remove(ref, `1 2 0:1 / /x rw - overlay overlay rw,lowerdir=${st.rootfs(ref)},upperdir=/u`)).toThrow('image a:1 is in use by a running container');
    st.remove(ref, '');
    expect(st.list()).toEqual([]);
    expect(() => st.remove(ref, '')).toThrow('no such image: a:1');
  });
});

describe('applyLayer', () => {
  it('applies whiteouts and opaque dirs, replaces files, never writes through a symlink', () => {
    const root = tmp();
    const outside = tmp();
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc', 'a'), 'a');
    writeFileSync(join(root, 'etc', 'b'), 'b');
    mkdirSync(join(root, 'd'));
    writeFileSync(join(root, 'd', 'old'), 'old');
    symlinkSync(outside, join(root, 'link')); // a lower layer's symlink to a host dir
    const layer = tmp();
    mkdirSync(join(layer, 'etc'));
    writeFileSync(join(layer, 'etc', '.wh.a'), '');
    writeFileSync(join(layer, 'etc', 'b'), 'B');
    mkdirSync(join(layer, 'd'));
    writeFileSync(join(layer, 'd', '.wh..wh..opq'), '');
    writeFileSync(join(layer, 'd', 'new'), 'new');
    mkdirSync(join(layer, 'link'));
    writeFileSync(join(layer, 'link', 'escape'), 'x');
    writeFileSync(join(layer, '.wh..'), ''); // names the dir itself: ignored
    applyLayer(layer, root);
    expect(readdirSync(join(root, 'etc'))).toEqual(['b']);
    expect(readFileSync(join(root, 'etc', 'b'), 'utf8')).toBe('B');
    expect(readdirSync(join(root, 'd'))).toEqual(['new']);
    expect(readdirSync(outside)).toEqual([]); // the symlink was replaced, not followed
    expect(lstatSync(join(root, 'link')).isDirectory()).toBe(true);
    expect(existsSync(join(root, 'link', 'escape'))).toBe(true);
  });
});

describe('progress', () => {
  it('draws a bar only on a TTY', () => {
    expect(progressLine('importing x', 5e6, 10e6, 10)).toBe('importing x [#####-----] 5.0/10.0 MB 50%');
    let tty = '';
    const p = new Progress('i', 100, { isTTY: true, write: (s: string) => (tty += s) });
    p.add(50);
    p.end();
    const line = `\r${progressLine('i', 50, 100)}\x1b[K`;
    expect(tty).toBe(`${line}${line}\n`);
    let pipe = '';
    const q = new Progress('i', 100, { isTTY: false, write: (s: string) => (pipe += s) });
    q.add(100);
    q.end();
    expect(pipe).toBe('');
  });
});

describe('isDynamicElf', () => {
  it('tells a static busybox from a dynamic binary', () => {
    expect(isDynamicElf(readFileSync('/bin/busybox').subarray(0, 4096))).toBe(false);
    expect(isDynamicElf(readFileSync(process.execPath).subarray(0, 4096))).toBe(true);
    expect(() => isDynamicElf(Buffer.alloc(64))).toThrow('not a 64-bit ELF file');
  });
});

describe('feed (a child\'s stdin fed from the input; issue 18)', () => {
  /** A stand-in for a child's stdin: takes `take` chunks, then is destroyed as when the child exits. */
  const stdin = (take: number) => {
    const got: string[] = [];
    const w: Writable = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, cb) {
        got.push(chunk.toString());
        cb();
        if (got.length === take) setImmediate(() => w.destroy());
      },
    });
    return { w, got };
  };
  async function* source(n: number, read: string[]) {
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setImmediate(r));
      read.push(`c${i}`);
      yield Buffer.from(`c${i}`);
    }
  }

  it('writes every chunk and ends the stream', async () => {
    const { w, got } = stdin(-1);
    const read: string[] = [];
    await feed(source(5, read), w);
    expect(got).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    expect(w.writableEnded).toBe(true);
  });

  it('settles when the stream is gone before the input ends (tar exits at its end marker), still reading it all', async () => {
    const { w, got } = stdin(2);
    const read: string[] = [];
    await feed(source(6, read), w); // before the fix: end() on the destroyed stream waited for a 'finish' that never came
    expect(got).toEqual(['c0', 'c1']);
    expect(read).toHaveLength(6); // counted and hashed to the end
  });

  it('settles when the stream is gone and errored (EPIPE) while a write waits for drain', async () => {
    const read: string[] = [];
    const w = new Writable({ highWaterMark: 1, write(_c, _e, cb) { setImmediate(() => cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))); } });
    await feed(source(4, read), w);
    expect(read).toHaveLength(4);
    expect(w.destroyed).toBe(true);
  });
});
