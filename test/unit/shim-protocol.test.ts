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
    expect(encodeReply({ action: 'print', text: 'v\n', status: 0 }).toString()).toBe('print\x002\0v\n\x000\0');
  });
});
