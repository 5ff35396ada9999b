import { describe, expect, it } from 'vitest';
import { judge, lookup, performerOf, SYSCALLS } from '../../actors/vetter/registry.ts';
import { CHMOD_FAMILY, MOUNT_FAMILY } from '../../actors/runc/seccomp.ts';
import { NATIVE_TABLE_PATH, renderNativeTable } from '../../actors/vetter/native-table.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

describe('vetted syscall registry', () => {
  it('has one entry per syscall, with distinct numbers per architecture', () => {
    const names = SYSCALLS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const arch of ['x86_64', 'i386'] as const) {
      const nrs = SYSCALLS.map((s) => s.nr[arch]);
      expect(new Set(nrs).size, arch).toBe(nrs.length);
    }
    expect(lookup('fchmodat2')?.nr).toEqual({ x86_64: 452, i386: 452 });
    expect(lookup('reboot')).toBeUndefined();
  });
  it('builds the seccomp families from its notify rules', () => {
    expect([...MOUNT_FAMILY]).toEqual(['mount', 'umount2', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr']);
    expect(CHMOD_FAMILY).toEqual({ chmod: 1, fchmod: 1, fchmodat: 2, fchmodat2: 2 });
  });
  it('reads only argument indexes a syscall has, each name once', () => {
    for (const s of SYSCALLS) {
      expect(new Set(s.reads.map((r) => r.name)).size, s.name).toBe(s.reads.length);
      for (const r of s.reads) expect(r.arg >= 0 && r.arg < 6, `${s.name} ${r.name}`).toBe(true);
    }
  });
  it('renders the flags of the audit event per syscall', () => {
    const args = [0n, 0o104755n, 0o2755n, 0x1021n, 0n, 0n];
    expect(lookup('mount')?.auditFlags?.(args)).toBe('0x1021');
    expect(lookup('umount2')?.auditFlags?.(args)).toBe('0x89ed');
    expect(lookup('chmod')?.auditFlags?.(args)).toBe('04755');
    expect(lookup('fchmodat2')?.auditFlags?.(args)).toBe('02755');
    expect(lookup('open_tree')?.auditFlags).toBeUndefined();
  });
  it('refuses what it does not list (the default handler) and maps each perform op to its performer', () => {
    expect(judge({ container: 'c', pid: 1, syscall: 'reboot', args: [], strings: {} })).toMatchObject({ kind: 'errno', code: 'EPERM' });
    expect(performerOf({ op: 'umount', target: '/m', flags: 0n }).syscalls).toContain('umount2');
    expect(performerOf({ op: 'chmod', syscall: 'chmod', path: 'f', mode: 0o4755, flags: 0 }).syscalls).toEqual(['chmod']);
    const m = performerOf({ op: 'mount', target: '/p', fstype: 'proc', flags: 0n });
    expect(m.emulates?.({ op: 'mount', target: '/p', fstype: 'proc', flags: 0n })).toEqual({ fstype: 'proc', target: '/p' });
    expect(m.emulates?.({ op: 'mount', target: '/p', fstype: 'proc', flags: 0x1000n })).toBeUndefined(); // a bind
  });
  it('is the source of the native watcher\'s table (run `npm run gen:syscalls` after changing it)', () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    expect(readFileSync(`${root}${NATIVE_TABLE_PATH}`, 'utf8')).toBe(renderNativeTable(SYSCALLS));
  });
});
