// Renders the registry's syscall names, numbers and argument reads as the C++ table the native
// watcher decodes notifications with (native/src/vetted-syscalls.h): TypeScript is the source of truth,
// the header is generated (`npm run gen:syscalls`) and a unit test checks it is up to date. Pure.
import type { ArgReader, SyscallEntry } from './types.ts';

export const NATIVE_TABLE_PATH = 'native/src/vetted-syscalls.h';

const READERS: Record<ArgReader, string> = {
  'string': 'kReadString', 'mount-data': 'kReadMountData', 'fsconfig-key': 'kReadFsconfigKey',
  'fsconfig-value': 'kReadFsconfigValue', 'mount-attr': 'kReadMountAttr',
};

const enumOf = (name: string) => `SC_${name.toUpperCase()}`;

export function renderNativeTable(syscalls: readonly SyscallEntry<unknown>[]): string {
  const decode = (arch: 'x86_64' | 'i386') =>
    [...syscalls].sort((a, b) => a.nr[arch] - b.nr[arch]).map((s) => `    case ${s.nr[arch]}: return ${enumOf(s.name)};`);
  const reads = syscalls.flatMap((s) => s.reads.map((r) => `    {${enumOf(s.name)}, "${r.name}", ${r.arg}, ArgReader::${READERS[r.how]}},`));
  return [
    '// Generated from actors/vetter/registry.ts by `npm run gen:syscalls`: do not edit (test/unit/vetter-registry.test.ts',
    '// checks it is up to date). The vetted syscalls: their names, numbers and the pointer arguments read.',
    '#pragma once',
    '',
    '#include <cstdint>',
    '',
    'namespace eci_seccomp {',
    '',
    `enum Sc { SC_UNKNOWN, ${syscalls.map((s) => enumOf(s.name)).join(', ')} };`,
    '',
    `const char* const kScNames[] = {"unknown", ${syscalls.map((s) => `"${s.name}"`).join(', ')}};`,
    '',
    '// x86_64 numbers (x32 shares them, with the X32 bit cleared by the caller).',
    'inline Sc ScOfX86_64(uint32_t nr) {',
    '  switch (nr) {',
    ...decode('x86_64'),
    '    default: return SC_UNKNOWN;',
    '  }',
    '}',
    '',
    'inline Sc ScOfI386(uint32_t nr) {',
    '  switch (nr) {',
    ...decode('i386'),
    '    default: return SC_UNKNOWN;',
    '  }',
    '}',
    '',
    'enum class ArgReader { kReadString, kReadMountData, kReadFsconfigKey, kReadFsconfigValue, kReadMountAttr };',
    '',
    '// Which argument of which syscall is read, under which name and how (seccomp.cc has one reader per kind).',
    'struct ArgRead {',
    '  Sc sc;',
    '  const char* name;',
    '  int arg;',
    '  ArgReader how;',
    '};',
    '',
    'const ArgRead kArgReads[] = {',
    ...reads,
    '};',
    '',
    '}  // namespace eci_seccomp',
    '',
  ].join('\n');
}
