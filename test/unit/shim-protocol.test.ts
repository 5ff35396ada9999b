import { describe, expect, it } from 'vitest';
import { encodeReply, FrameDecoder, ProtocolError } from '../../actors/shim-protocol.ts';

describe('shim protocol', () => {
  it('decodes a request split across chunks, with empty arguments', () => {
    const d = new FrameDecoder();
    const raw = Buffer.from('ECI1\0/cwd\x003\0create\0\0id-1\0EXIT\x00137\0');
    const frames = [...d.push(raw.subarray(0, 7)), ...d.push(raw.subarray(7, 20)), ...d.push(raw.subarray(20))];
    expect(frames).toEqual([{ kind: 'request', cwd: '/cwd', argv: ['create', '', 'id-1'] }, { kind: 'exit', status: 137 }]);
  });
  it('decodes control frames', () => {
    expect(new FrameDecoder().push(Buffer.from('CTL1\0{"op":"ps"}\0'))).toEqual([{ kind: 'control', body: { op: 'ps' } }]);
  });
  it('rejects garbage with a ProtocolError', () => {
    expect(() => new FrameDecoder().push(Buffer.from('HELLO\0'))).toThrow(ProtocolError);
    expect(() => new FrameDecoder().push(Buffer.from('ECI1\0/\0-1\0'))).toThrow(/bad argument count/);
    expect(() => new FrameDecoder().push(Buffer.from('EXIT\0x\0'))).toThrow(/bad exit status/);
    expect(() => new FrameDecoder().push(Buffer.from('CTL1\0{\0'))).toThrow(/not JSON/);
  });
  it('encodes replies the C launcher reads', () => {
    expect(encodeReply({ action: 'exec', argv: ['runc', 'start', 'x'] }).toString()).toBe('exec\x003\0runc\0start\0x\0');
    expect(encodeReply({ action: 'error', message: 'no' }).toString()).toBe('error\x001\0no\0');
    expect(encodeReply({ action: 'done', status: 3 }).toString()).toBe('done\x001\x003\0');
    expect(encodeReply({ action: 'pass' }).toString()).toBe('pass\x000\0');
    expect(encodeReply({ action: 'fifo', fifo: '/r/x/exec.fifo', pid: 42, argv: ['runc', 'start', 'x'] }).toString()).toBe('fifo\x005\0/r/x/exec.fifo\x0042\0runc\0start\0x\0');
    expect(encodeReply({ action: 'print', text: 'v\n', status: 0 }).toString()).toBe('print\x002\0v\n\x000\0');
  });
  it("decodes eci run's client frames: run (argv, environment), its exit with the stderr tail, signals", () => {
    const d = new FrameDecoder();
    const raw = Buffer.from('RUN1\0/home\x004242\x003\0-e\0K\0busybox\x002\0K=v=w\0PATH=/bin\0RUNX\x00127\x001\0exec: not found\n\0SIGN\x001\0');
    const frames = [...d.push(raw.subarray(0, 9)), ...d.push(raw.subarray(9, 30)), ...d.push(raw.subarray(30))];
    expect(frames).toEqual([
      { kind: 'run', cwd: '/home', pid: 4242, argv: ['-e', 'K', 'busybox'], env: { K: 'v=w', PATH: '/bin' } },
      { kind: 'run-exit', status: 127, started: true, stderrTail: 'exec: not found\n' },
      { kind: 'signal', signal: 1 },
    ]);
    expect(new FrameDecoder().push(Buffer.from('RUNX\x00130\x000\0\0'))).toEqual([{ kind: 'run-exit', status: 130, started: false, stderrTail: '' }]);
    expect(() => new FrameDecoder().push(Buffer.from('RUN1\0/\x000\x000\x000\0'))).toThrow(/bad pid/);
    expect(() => new FrameDecoder().push(Buffer.from('RUN1\0/\x001\x00-2\0'))).toThrow(/bad argument count/);
    expect(() => new FrameDecoder().push(Buffer.from('SIGN\x0099\0'))).toThrow(/bad signal/);
  });
  it("encodes eci run's replies", () => {
    expect(encodeReply({ action: 'start', stdin: true, argv: ['/eci-runc', 'run', 'x'] }).toString()).toBe('start\x004\x001\0/eci-runc\0run\0x\0');
    expect(encodeReply({ action: 'fail', text: 'eci: no\n', status: 125 }).toString()).toBe('fail\x002\0eci: no\n\x00125\0');
  });
});
