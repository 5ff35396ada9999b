import { describe, expect, it } from 'vitest';
import { NativeError, parseHelperOutput } from '../../native/index.ts';

const FAIL =
  '{"ok":false,"code":"EINVAL","errno":22,"syscall":"fsconfig","message":"fsconfig lowerdir: Invalid argument"}';

describe('NativeError from eci-helper output', () => {
  it('reads {"ok":true} as success', () => {
    expect(parseHelperOutput('{"ok":true}\n')).toBeNull();
    expect(parseHelperOutput('{"ok":true}\n', { code: 0 })).toBeNull();
  });

  it('turns a failure line into a NativeError shaped like SystemError', () => {
    const e = parseHelperOutput(`${FAIL}\n`, { code: 1 });
    expect(e).toBeInstanceOf(NativeError);
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({
      name: 'NativeError',
      code: 'EINVAL',
      errno: 22,
      syscall: 'fsconfig',
      message: 'fsconfig lowerdir: Invalid argument',
    });
  });

  it('builds the same error with NativeError.fromHelperJSON', () => {
    const e = NativeError.fromHelperJSON(FAIL);
    expect(e).toMatchObject({ code: 'EINVAL', errno: 22, syscall: 'fsconfig' });
    expect(() => NativeError.fromHelperJSON('{"ok":true}')).toThrow(TypeError);
  });

  it('keeps the EUSAGE code of bad usage, with errno EINVAL', () => {
    const e = parseHelperOutput('{"ok":false,"code":"EUSAGE","errno":22,"syscall":"","message":"--target must be an absolute path"}', { code: 2 });
    expect(e).toMatchObject({ code: 'EUSAGE', errno: 22, syscall: '' });
  });

  it('uses the last non-empty line, and derives a missing errno from the code', () => {
    const e = parseHelperOutput('noise\n{"ok":false,"code":"ENOENT","syscall":"open_tree","message":"m"}\n\n');
    expect(e).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open_tree', message: 'm' });
  });

  it('reports output that breaks the contract as EBADMSG, with the exit and stderr', () => {
    const none = parseHelperOutput('', { code: null, signal: 'SIGKILL', stderr: 'boom' });
    expect(none).toMatchObject({ code: 'EBADMSG', errno: 74, syscall: 'eci-helper' });
    expect(none?.message).toContain('killed by SIGKILL');
    expect(none?.message).toContain('boom');
    expect(parseHelperOutput('not json')).toMatchObject({ code: 'EBADMSG' });
    expect(parseHelperOutput('[1,2]')).toMatchObject({ code: 'EBADMSG' });
    expect(parseHelperOutput('{"ok":false,"errno":1}')).toMatchObject({ code: 'EBADMSG' });
    expect(parseHelperOutput('{"ok":true}', { code: 1 })).toMatchObject({ code: 'EBADMSG' });
  });

  it('wraps an addon SystemError-like error without losing its fields', () => {
    const raw = Object.assign(new Error("EBUSY: Device or resource busy, umount2 '/x'"), {
      code: 'EBUSY', errno: 16, syscall: 'umount2', path: '/x',
    });
    const e = NativeError.from(raw);
    expect(e).toMatchObject({ code: 'EBUSY', errno: 16, syscall: 'umount2', path: '/x' });
    expect(e.cause).toBe(raw);
    expect(NativeError.from(e)).toBe(e);
  });
});
