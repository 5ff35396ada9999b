// Manager configuration from the environment (the admin settings file arrives with the policy work).
import { join } from 'node:path';
import { DEFAULT_NATS_PORT } from '../bus/embedded.ts';
import { remoteAuthFromEnv, type RemoteBusAuth } from '../bus/remote.ts';
import { EciError } from './errors.ts';
import { DEFAULT_ID_BASE, DEFAULT_SETTINGS_PATH } from './settings.ts';

export interface ManagerConfig {
  stateDir: string;
  runDir: string;
  socket: string;
  natsUrl?: string;
  natsPort: number;
  /** Credentials and TLS for an external bus (ECI_NATS_CREDS, ECI_NATS_USER/PASSWORD, ECI_NATS_TLS_CA). */
  natsAuth: RemoteBusAuth;
  /** The group that may read the bus (observer credentials); `eci install` creates it. */
  group: string;
  runc: string;
  /** Uid ranges from ECI_UID_*; unset means the settings file's idRange (default 0x70000000/65536/1024). */
  range?: { base: number; size: number; count: number };
  settingsPath: string;
  logLevel: string;
  /** ECI_SCHED_SLICE_US: the vetted call path's EEVDF slice (native/cmd/sched-slice.h reads the variable); 0: the kernel's. */
  schedSliceUs: number;
  /** ECI_SETKEY_HOOK: who runs Docker's libnetwork-setkey hook: `eci` (native/cmd/eci-setkey.c, the default) or `docker` (as dockerd wrote it). */
  setkeyHook: 'eci' | 'docker';
  /** ECI_NATIVE_START (default 1): `start` of a created container opens runc's exec fifo in the launcher instead of running runc start; 0: runc start. */
  nativeStart: boolean;
  /** ECI_PERFORM_LANE (default 1): the performer runs fast-path calls in its lane (native/cmd/perform.c reads the variable); 0: in spares. */
  performLane: boolean;
}

function int(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new EciError('ECONFIG', `${name}=${v}: expected an integer from ${min} to ${max}`);
  return n;
}

/** 0, or a slice the kernel takes as asked (it clamps a fair task's to 0.1..100 ms). */
function schedSlice(env: NodeJS.ProcessEnv): number {
  const us = int(env, 'ECI_SCHED_SLICE_US', 100, 0, 100_000);
  if (us > 0 && us < 100) throw new EciError('ECONFIG', `ECI_SCHED_SLICE_US=${us}: expected 0 (the kernel's slice) or 100 to 100000`);
  return us;
}

function setkeyHook(env: NodeJS.ProcessEnv): 'eci' | 'docker' {
  const v = env.ECI_SETKEY_HOOK || 'eci';
  if (v !== 'eci' && v !== 'docker') throw new EciError('ECONFIG', `ECI_SETKEY_HOOK=${v}: expected eci or docker`);
  return v;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ManagerConfig {
  const runDir = env.ECI_RUN_DIR || '/run/eci';
  const fromEnv = ['ECI_UID_BASE', 'ECI_UID_SIZE', 'ECI_UID_COUNT'].some((k) => env[k]);
  const range = {
    base: int(env, 'ECI_UID_BASE', DEFAULT_ID_BASE, 1, 0xffffffff),
    size: int(env, 'ECI_UID_SIZE', 65536, 65536, 0x7fffffff),
    count: int(env, 'ECI_UID_COUNT', 1024, 1, 65536),
  };
  if (range.base + range.size * range.count > 0xffffffff) {
    throw new EciError('ECONFIG', `uid ranges ${range.base} + ${range.count} x ${range.size} go past the 32-bit id space`);
  }
  return {
    stateDir: env.ECI_STATE_DIR || '/var/lib/eci',
    runDir,
    socket: env.ECI_SOCKET || join(runDir, 'eci.sock'),
    natsUrl: env.ECI_NATS_URL || undefined,
    natsPort: int(env, 'ECI_NATS_PORT', DEFAULT_NATS_PORT, 1, 65535),
    natsAuth: remoteAuthFromEnv(env),
    group: env.ECI_GROUP || 'eci',
    runc: env.ECI_RUNC || 'runc',
    range: fromEnv ? range : undefined,
    settingsPath: env.ECI_SETTINGS || DEFAULT_SETTINGS_PATH,
    logLevel: env.ECI_LOG_LEVEL || 'info',
    schedSliceUs: schedSlice(env),
    setkeyHook: setkeyHook(env),
    nativeStart: int(env, 'ECI_NATIVE_START', 1, 0, 1) === 1,
    performLane: int(env, 'ECI_PERFORM_LANE', 1, 0, 1) === 1,
  };
}
