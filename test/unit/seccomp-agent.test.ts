// The pure half of the seccomp agent surface (payload judging, the listener over a backend, helper
// arguments), through native/mock.ts: no root, no kernel.
import { beforeEach, describe, expect, it } from 'vitest';
import { asHelperArgs, parseAgentDelivery } from '../../native/seccomp-agent.ts';
import { listenSeccomp, mountAs, seccompMock, serveSeccompAgent, type SeccompNotif } from '../../native/mock.ts';

const good = (o: Record<string, unknown> = {}) =>
  JSON.stringify({ ociVersion: '1.0.2-dev', fds: ['seccompFd'], pid: 7, metadata: '', state: { ociVersion: '1.0.2-dev', id: 'c1', status: 'creating', pid: 7, bundle: '/b' }, ...o });

describe('parseAgentDelivery', () => {
  it('takes the fd named seccompFd and closes the others', () => {
    expect(parseAgentDelivery({ payload: good(), fds: [9] })).toEqual({
      conn: { state: JSON.parse(good()), raw: good(), notifyFd: 9 },
      close: [],
    });
    const two = good({ fds: ['other', 'seccompFd'] });
    expect(parseAgentDelivery({ payload: two, fds: [5, 6] })).toMatchObject({ conn: { notifyFd: 6 }, close: [5] });
  });

  it('rejects garbage with a one-line error and closes every fd', () => {
    const cases: [Parameters<typeof parseAgentDelivery>[0], RegExp][] = [
      [{ payload: 'nope\n{', fds: [3] }, /^payload is not JSON: /],
      [{ payload: '', fds: [] }, /^empty payload$/],
      [{ payload: '[1]', fds: [3] }, /not a JSON object/],
      [{ payload: good(), fds: [] }, /no fd received/],
      [{ payload: good(), fds: [3, 4] }, /received 2 fds but the payload names 1/],
      [{ payload: good({ fds: ['x'] }), fds: [3] }, /names no "seccompFd"/],
      [{ payload: good({ fds: 'seccompFd' }), fds: [3] }, /no "fds" list/],
      [{ payload: good({ pid: -1 }), fds: [3] }, /no valid "pid"/],
      [{ payload: good({ state: {} }), fds: [3] }, /no "state.id"/],
      [{ payload: good(), fds: [3], truncated: true }, /larger than 65536/],
    ];
    for (const [d, re] of cases) {
      const { conn, close } = parseAgentDelivery(d);
      expect(conn.error, d.payload).toMatch(re);
      expect(conn.error).not.toContain('\n');
      expect(conn.notifyFd).toBeNull();
      expect(close).toEqual(d.fds);
    }
  });

  it('accepts a complete payload even from a sender that went silent without closing', () => {
    expect(parseAgentDelivery({ payload: good(), fds: [3], timedOut: true }).conn.notifyFd).toBe(3);
    expect(parseAgentDelivery({ payload: '{"fds":', fds: [3], timedOut: true }).conn.error).toMatch(/went silent/);
  });
});

describe('seccomp listener (mock backend)', () => {
  beforeEach(() => seccompMock.reset());

  it('serves connections, iterates notifications, records responses, ends on hangup', async () => {
    const conns: unknown[] = [];
    const agent = serveSeccompAgent('/run/eci/agent.sock', (c) => conns.push(c));
    const c = seccompMock.connect('/run/eci/agent.sock', seccompMock.runcDelivery({ id: 'c1', pid: 7, fd: 11 }));
    expect(c.notifyFd).toBe(11);
    expect(conns).toHaveLength(1);
    seccompMock.connect('/run/eci/agent.sock', { payload: good(), fds: [12, 13] });
    expect(seccompMock.closedFds).toEqual([12, 13]);

    const l = listenSeccomp(11);
    expect(l.fd).toBe(11);
    const a = seccompMock.notify(11, { syscall: 'mount', strings: { source: 'tmpfs', target: '/mnt', fstype: 'tmpfs', data: null } });
    seccompMock.notify(11, { syscall: 'mount', valid: false }); // left the syscall while being read: dropped
    const b = seccompMock.notify(11, { syscall: 'umount2', strings: { target: '/mnt' } });
    const got: SeccompNotif[] = [];
    for await (const n of l) {
      got.push(n);
      expect('valid' in n).toBe(false);
      expect(l.idValid(n.id)).toBe(true);
      await l.respond(n.id, n.syscall === 'mount' ? { kind: 'errno', errno: 1 } : { kind: 'value', val: 0 });
      expect(l.idValid(n.id)).toBe(false);
      if (got.length === 2) seccompMock.hangup(11);
    }
    expect(got.map((n) => n.id)).toEqual([a, b]);
    expect(seccompMock.responses.map((r) => r.response)).toEqual([{ kind: 'errno', errno: 1 }, { kind: 'value', val: 0 }]);
    await l.closed;
    expect(l.fd).toBe(-1);
    await expect(l.respond(a, { kind: 'continue' })).rejects.toMatchObject({ code: 'ENOENT' });
    await agent.close();
    expect(seccompMock.agents).toEqual([]);
  });

  it('close() ends iteration and closes the fd; respond failures are NativeErrors', async () => {
    const l = listenSeccomp(20);
    const id = seccompMock.notify(20, { syscall: 'mount' });
    seccompMock.failNext('respond', 'ENOENT');
    await expect(l.respond(id, { kind: 'continue' })).rejects.toMatchObject({ name: 'NativeError', code: 'ENOENT' });
    const it = l[Symbol.asyncIterator]();
    expect((await it.next()).value?.id).toBe(id);
    const pending = it.next();
    await l.close();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(seccompMock.closedFds).toEqual([20]);
  });
});

describe('mount-as arguments', () => {
  it('passes the vetted arguments through, NULLs as absent options, flags as decimal', async () => {
    expect(asHelperArgs('mount-as', { pid: 5, source: 'tmpfs', target: 'sub', fstype: 'tmpfs', flags: 32768n, data: null }, 3)).toEqual([
      'mount-as', '--pid', '5', '--source', 'tmpfs', '--fstype', 'tmpfs', '--target', 'sub', '--flags', '32768',
    ]);
    expect(asHelperArgs('umount-as', { pid: 5, target: '/mnt', flags: 2, notify: { fd: 9, id: 18446744073709551615n } }, 3)).toEqual([
      'umount-as', '--pid', '5', '--target', '/mnt', '--flags', '2', '--notif-fd', '3', '--notif-id', '18446744073709551615',
    ]);
    expect(() => asHelperArgs('mount-as', { pid: 0, target: '/mnt' })).toThrow(/pid/);
    expect(() => asHelperArgs('mount-as', { pid: 1, target: '/mnt', data: 'a\0b' })).toThrow(/NUL/);
    await mountAs({ pid: 1, target: '/x' });
    seccompMock.failNext('mountAs', 'EBUSY');
    await expect(mountAs({ pid: 1, target: '/x' })).rejects.toMatchObject({ code: 'EBUSY', syscall: 'mount' });
    expect(seccompMock.asCalls).toHaveLength(2);
  });
});
