// The spec step docker-setkey: dockerd 20.10's libnetwork-setkey hook, and only it, runs eci-setkey.
import { describe, expect, it } from 'vitest';
import { isDockerSetkey, withNativeSetkey } from '../../actors/spec/docker-setkey.ts';
import type { OciSpec } from '../../actors/runc/spec.ts';

const BIN = '/opt/eci/native/bin/eci-setkey';
const CID = 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f';
const docker = (over: Record<string, unknown> = {}) => ({
  path: '/proc/1234/exe',
  args: ['libnetwork-setkey', '-exec-root=/var/run/docker', CID, '0123456789ab'],
  ...over,
});

describe('docker-setkey', () => {
  it("points dockerd's hook at eci-setkey with the same arguments, leaving every other hook and field alone", () => {
    const other = { path: '/usr/bin/nvidia-hook', args: ['nvidia-hook', 'prestart'] };
    const spec: OciSpec = { ociVersion: '1.0.2-dev', hooks: { prestart: [other, docker({ timeout: 5 })], poststop: [other] } };
    const out = withNativeSetkey(spec, BIN);
    expect(out.hooks).toEqual({
      prestart: [other, { path: BIN, args: ['eci-setkey', '-exec-root=/var/run/docker', CID, '0123456789ab'], timeout: 5 }],
      poststop: [other],
    });
    expect(out.ociVersion).toBe('1.0.2-dev');
    expect((spec.hooks as { prestart: unknown[] }).prestart[1]).toEqual(docker({ timeout: 5 })); // the input is not changed
  });

  it('takes it from createRuntime too', () => {
    const out = withNativeSetkey({ hooks: { createRuntime: [docker()] } }, BIN);
    expect((out.hooks as { createRuntime: { path: string }[] }).createRuntime[0].path).toBe(BIN);
  });

  it("leaves the spec as it is without eci-setkey (ECI_SETKEY_HOOK=docker, or not built)", () => {
    const spec: OciSpec = { hooks: { prestart: [docker()] } };
    expect(withNativeSetkey(spec, undefined)).toBe(spec);
    expect(withNativeSetkey({}, BIN)).toEqual({});
  });

  it.each([
    ['a path that is not a dockerd /proc/<pid>/exe', { path: '/usr/bin/dockerd' }],
    ['pid 0', { path: '/proc/0/exe' }],
    ["another Docker version's -sock form", { args: ['libnetwork-setkey', '-sock', '/run/docker/libnetwork/x.sock'] }],
    ['the old form without -exec-root', { args: ['libnetwork-setkey', CID, '0123456789ab'] }],
    ['a relative exec root', { args: ['libnetwork-setkey', '-exec-root=run/docker', CID, '0123456789ab'] }],
    ['a non-hex container id', { args: ['libnetwork-setkey', '-exec-root=/run/docker', 'abc"def', '0123456789ab'] }],
    ['a non-hex controller id', { args: ['libnetwork-setkey', '-exec-root=/run/docker', CID, '../../x'] }],
    ['an extra argument', { args: ['libnetwork-setkey', '-exec-root=/run/docker', CID, '0123456789ab', 'x'] }],
    ['another re-exec', { args: ['docker-mountfrom', '-exec-root=/run/docker', CID, '0123456789ab'] }],
  ])('leaves %s to run as written', (_, over) => {
    expect(isDockerSetkey(docker(over))).toBe(false);
    const spec: OciSpec = { hooks: { prestart: [docker(over)] } };
    expect(withNativeSetkey(spec, BIN)).toBe(spec);
  });
});
