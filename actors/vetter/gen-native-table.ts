// `npm run gen:syscalls`: writes native/src/vetted-syscalls.h from the registry (see native-table.ts).
import { writeFileSync } from 'node:fs';
import { SYSCALLS } from './registry.ts';
import { NATIVE_TABLE_PATH, renderNativeTable } from './native-table.ts';

writeFileSync(NATIVE_TABLE_PATH, renderNativeTable(SYSCALLS));
console.log(`wrote ${NATIVE_TABLE_PATH} (${SYSCALLS.length} syscalls)`);
