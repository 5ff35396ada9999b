// Recovery at manager start fails closed: a container runc no longer knows keeps its range while its
// init still runs (same pid and, when recorded, same start time), and is released when it does not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import { containerRecordKeys } from '../../bus/keys.ts';
import { restoreContainers } from '../../actors/manager/recovery.ts';
import { ContainerTable } from '../../actors/manager/table.ts';
import type { StoredRecord } from '../../actors/restore.ts';
import { memKv } from '../helpers/mem-kv.ts';

const R = (i: number) => ({ hostID: 1879048192 + i * 65536, size: 65536 });
// A /proc/<pid>/stat line whose field 22 (start time) is `start`.
const statLine = (pid: number, start: number) => `${pid} (sleep) S ${Array.from({ length: 18 }, () => '0').join(' ')} ${start} 0 0`;

describe('restoreContainers and inits runc no longer knows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eci-recovery-init-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps a live init\'s container and range, releases one whose pid is gone or reused', async () => {
    const rec = (id: string, index: number, initPid: number, initStart?: number): StoredRecord => ({
      state: 'running', runcRoot: join(dir, 'runc'), created: new Date().toISOString(), initPid, initStart,
      context: { id, bundle: `/b/${id}`, index, uid: R(index), gid: R(index), runcCreated: true },
    });
    // live: its pid runs with its start time; old: an older record without a start time, pid running
    // (kept: erring towards running); reused: the pid runs with another start time; gone: no such pid.
    const records = { live: rec('live', 0, 101, 5000), old: rec('old', 1, 102), reused: rec('reused', 2, 103, 5000), gone: rec('gone', 3, 104, 5000) };
    const procs: Record<number, string> = { 101: statLine(101, 5000), 102: statLine(102, 7), 103: statLine(103, 9999) };
    const kv = memKv();
    for (const [id, r] of Object.entries(records)) await kv.put(containerRecordKeys.key(id), JSON.stringify(r));
    const table = new ContainerTable();
    const freed: string[] = [];
    const removed: string[] = [];
    await restoreContainers({
      records: kv as unknown as KV,
      allocator: { free: (o) => void freed.push(o), held: () => ({ 0: 'live', 1: 'old', 2: 'reused', 3: 'gone' }), settled: async () => {} },
      events: { publish: async () => {} } as never,
      table,
      files: {} as never,
      native: { unmount: () => {} },
      revive: (id, r) => {
        const c = r.context;
        table.groups.join(r.group ?? id, id, { index: c.index!, uid: c.uid!, gid: c.gid! });
        table.add({ id } as never);
      },
      removeRootfs: (id) => void removed.push(id),
      runDir: join(dir, 'run'),
      log: pino({ level: 'silent' }),
      stat: (pid) => procs[pid],
    });
    expect(freed.sort()).toEqual(['gone', 'reused']);
    expect(removed.sort()).toEqual(['gone', 'reused']);
    expect([table.initPid('live'), table.initPid('old')]).toEqual([101, 102]);
    // Its start time is known again, so the reconcile tells its end from a reuse of the pid.
    expect(table.initRunning('live', (pid) => procs[pid])).toBe(true);
    procs[101] = statLine(101, 6000);
    expect(table.initRunning('live', (pid) => procs[pid])).toBe(false);
  });
});
