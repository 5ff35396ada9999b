// Every KV key layout eci uses, with the filters that list them, built here beside the buckets'
// names (subjects.ts), so that a writer and a reader can never disagree on a key's shape.
import { sysctlToken } from './subjects.ts';

/** One kind of key in a bucket: `<prefix>.<rest>`, listed with `<prefix>.>`. */
function family(prefix: string) {
  return {
    /** The filter that lists every key of this kind (kv.keys(filter)). */
    all: `${prefix}.>`,
    /** What follows the prefix in a key of this kind (undefined: another kind). */
    rest: (key: string): string | undefined => (key.startsWith(`${prefix}.`) ? key.slice(prefix.length + 1) : undefined),
  };
}

/** RANGES_BUCKET: `range.<index>` -> {owner, index, uid, gid, ts} (the allocator's source of truth). */
export const rangeKeys = {
  ...family('range'),
  key: (index: number) => `range.${index}`,
};

/** CONTAINERS_BUCKET: `<id>` -> the container's record (state, context, what a restart needs). */
export const containerRecordKeys = {
  all: '>',
  key: (id: string) => id,
  idOf: (key: string) => key,
};

/** SYSCTL_BUCKET, the reconciler's records: `baseline.<key-with-dashes>` -> {key, baseline, written?}. */
export const sysctlBaselineKeys = {
  ...family('baseline'),
  key: (sysctl: string) => `baseline.${sysctlToken(sysctl)}`,
};

/** SYSCTL_BUCKET: `container.<id>` -> {values: {key: n}}: the host-max values a container set. */
export const sysctlContainerKeys = {
  ...family('container'),
  key: (id: string) => `container.${id}`,
};

/** SYSCTL_BUCKET: `local.<id>` -> {values: {key: text}}: a container's own (per-container) entries. */
export const sysctlLocalKeys = {
  ...family('local'),
  key: (id: string) => `local.${id}`,
};
