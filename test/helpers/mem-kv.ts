// An in-memory stand-in for the reconciler's KV bucket (get/put/delete/keys with a `prefix.>` filter).
import type { SysctlKv } from '../../actors/sysctl/reconciler.actor.ts';

export function memKv(): SysctlKv {
  const data = new Map<string, string>();
  return {
    async get(k) { const v = data.get(k); return v === undefined ? null : { operation: 'PUT', json: <T>() => JSON.parse(v) as T }; },
    async put(k, v) { data.set(k, v); },
    async delete(k) { data.delete(k); },
    async keys(f) { const p = f?.replace(/>$/, '') ?? ''; return (async function* () { yield* [...data.keys()].filter((k) => k.startsWith(p)); })(); },
  };
}
