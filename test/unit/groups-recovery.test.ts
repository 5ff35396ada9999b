// After a manager restart a group's range stays while a restored member lives (its first member
// may be gone), and is freed when no member came back: restoreContainers on an in-memory KV.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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

describe('restoreContainers with groups', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eci-groups-recovery-'));
  const runcRoot = join(dir, 'runc');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const rec = (id: string, index: number, group?: string, state: StoredRecord['state'] = 'running'): StoredRecord => ({
    state, runcRoot, created: new Date().toISOString(), group,
    context: { id, bundle: `/b/${id}`, index, uid: R(index), gid: R(index), runcCreated: true },
  });

  it('keeps a range held by a live member, frees those of groups with none left', async () => {
    // a (gone) and b (alive) share group a's range 0; c (gone) held range 1 alone; d (alive, an older
    // record without a group) holds range 2 under its own id.
    const kv = memKv();
    const records: Record<string, StoredRecord> = { a: rec('a', 0, 'a'), b: rec('b', 0, 'a'), c: rec('c', 1, 'c'), d: rec('d', 2) };
    for (const [id, r] of Object.entries(records)) await kv.put(containerRecordKeys.key(id), JSON.stringify(r));
    for (const id of ['b', 'd']) mkdirSync(join(runcRoot, id), { recursive: true });
    const table = new ContainerTable();
    const freed: string[] = [];
    const held: Record<number, string> = { 0: 'a', 1: 'c', 2: 'd' };
    const published: string[] = [];
    await restoreContainers({
      records: kv as unknown as KV,
      allocator: { free: (o) => void freed.push(o), held: () => ({ ...held }), settled: async () => {} },
      events: { publish: async (subject: string) => void published.push(subject) } as never,
      table,
      files: {} as never,
      native: { unmount: () => {} },
      // What Manager.createContainer does for a record: the container comes back in its group.
      revive: (id, r) => {
        const c = r.context;
        table.groups.join(r.group ?? id, id, { index: c.index!, uid: c.uid!, gid: c.gid! });
        table.add({ id } as never);
      },
      removeRootfs: () => {},
      runDir: join(dir, 'run'),
      log: pino({ level: 'silent' }),
    });
    expect(freed).toEqual(['c']);
    expect(table.groups.members('a')).toEqual(['b']);
    expect(table.groups.range('a')).toEqual({ index: 0, uid: R(0), gid: R(0) });
    expect(table.groups.groupOf('d')).toBe('d');
    expect(published.sort()).toEqual(['eci.v1.evt.container.a.stopped', 'eci.v1.evt.container.c.stopped']);
    // The records of the gone are removed, the restored ones kept.
    const left: string[] = [];
    for await (const k of await kv.keys(containerRecordKeys.all)) left.push(containerRecordKeys.idOf(k));
    expect(left.sort()).toEqual(['b', 'd']);
  });
});
