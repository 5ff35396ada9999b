// Property-based fuzzing of everything that parses untrusted input: config.json specs, settings
// files, runtime command lines, launcher frames and bind-mount policy. Each either succeeds or
// fails with the module's own typed error (one line); nothing else may escape. Bounded in CI
// (ECI_FUZZ_RUNS raises it in the benchmark script).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EciError } from '../../actors/errors.ts';
import { parseSpec, checkNamespaces, applyUserNamespace, clampIdSysctls } from '../../actors/runc/spec.ts';
import { parseSettings } from '../../actors/settings.ts';
import { parseRuncArgs } from '../../actors/runc/cli.ts';
import { FrameDecoder, ProtocolError } from '../../actors/shim-protocol.ts';
import { checkBindMounts } from '../../actors/policy/mounts.ts';
import { addNotifyRules } from '../../actors/runc/seccomp.ts';

const runs = Number(process.env.ECI_FUZZ_RUNS ?? 300);
const oneLine = (e: unknown) => expect((e as Error).message).not.toMatch(/\n/);

/** Arbitrary JSON values biased towards the shapes the parsers expect. */
const specLike = fc.record({
  ociVersion: fc.option(fc.string(), { nil: undefined }),
  root: fc.oneof(fc.constant(undefined), fc.anything(), fc.record({ path: fc.oneof(fc.string(), fc.anything()), readonly: fc.anything() })),
  linux: fc.oneof(fc.anything(), fc.record({
    namespaces: fc.oneof(fc.anything(), fc.array(fc.record({ type: fc.constantFrom('pid', 'ipc', 'uts', 'mount', 'network', 'user', 'x'), path: fc.option(fc.string(), { nil: undefined }) }))),
    sysctl: fc.oneof(fc.constant(undefined), fc.dictionary(fc.constantFrom('net.ipv4.ping_group_range', 'x'), fc.string())),
    seccomp: fc.oneof(fc.constant(undefined), fc.anything()),
  })),
  mounts: fc.oneof(fc.constant(undefined), fc.anything(), fc.array(fc.record({ destination: fc.string(), type: fc.constantFrom('bind', 'proc', 'tmpfs'), source: fc.oneof(fc.string(), fc.constantFrom('/etc/docker', '/home/x', '../..', '/')), options: fc.array(fc.constantFrom('rbind', 'ro', 'bind', 'nosuid')) }))),
  process: fc.oneof(fc.constant(undefined), fc.anything()),
}, { requiredKeys: [] });

describe('fuzz', () => {
  it('config.json: parsed or refused with a one-line EciError, and the rewrites never throw anything else', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), specLike.map((x) => JSON.stringify(x) ?? 'null')), (text) => {
      try {
        const s = parseSpec(text, 'config.json');
        try { checkNamespaces(s, () => false); } catch (e) { expect(e).toBeInstanceOf(EciError); oneLine(e); }
        try {
          const r = clampIdSysctls(applyUserNamespace(s, { hostID: 100000, size: 65536 }, { hostID: 100000, size: 65536 }), 65536);
          addNotifyRules(r, '/run/eci/seccomp.sock', 'x');
        } catch (e) { expect(e).toBeInstanceOf(EciError); oneLine(e); }
        try {
          checkBindMounts(s, { id: 'x', bundle: '/b', policy: { restricted: ['/etc/docker'], shared: ['/home'], engineSockets: [], trustedImages: [] }, resolve: () => undefined });
        } catch (e) { expect(e).toBeInstanceOf(EciError); oneLine(e); }
      } catch (e) {
        expect(e).toBeInstanceOf(EciError);
        oneLine(e);
      }
    }), { numRuns: runs });
  });

  it('settings files: parsed or refused naming a field, never a crash', () => {
    const settingsLike = fc.record({
      fileSharing: fc.oneof(fc.anything(), fc.array(fc.oneof(fc.string(), fc.constant('/home')))),
      restrictedPaths: fc.anything(),
      idRange: fc.oneof(fc.anything(), fc.record({ base: fc.integer(), size: fc.integer(), count: fc.integer() }, { requiredKeys: [] })),
      enhancedContainerIsolation: fc.anything(),
      dockerSocketMount: fc.anything(),
      volumes: fc.anything(),
      extra: fc.anything(),
    }, { requiredKeys: [] });
    fc.assert(fc.property(fc.oneof(fc.string(), settingsLike.map((x) => JSON.stringify(x) ?? 'null')), (text) => {
      try {
        parseSettings(text, 'settings.json');
      } catch (e) {
        expect(e).toBeInstanceOf(EciError);
        expect((e as Error).message.startsWith('settings.json: ')).toBe(true);
        oneLine(e);
      }
    }), { numRuns: runs });
  });

  it('runtime command lines: parsed or refused with an EciError', () => {
    const tok = fc.oneof(fc.constantFrom('create', 'run', 'start', 'delete', 'exec', '--root', '--log', '-b', '--bundle', '--force', '-d', '--', 'x', ''), fc.string());
    fc.assert(fc.property(fc.array(tok, { maxLength: 12 }), (argv) => {
      try {
        parseRuncArgs(argv);
      } catch (e) {
        expect(e).toBeInstanceOf(EciError);
        oneLine(e);
      }
    }), { numRuns: runs });
  });

  it('launcher frames: decoded or refused with a ProtocolError, whatever the bytes and chunking', () => {
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(fc.string(), { maxLength: 6 }).map((a) => new TextEncoder().encode(['ECI1', '/', String(a.length), ...a].join('\0') + '\0')),
      fc.constant(new TextEncoder().encode('EXIT\0x\0')),
      fc.constant(new TextEncoder().encode('CTL1\0{\0')),
    );
    fc.assert(fc.property(fc.array(frame, { maxLength: 4 }), fc.integer({ min: 1, max: 17 }), (frames, chunk) => {
      const d = new FrameDecoder();
      const all = Buffer.concat(frames.map((f) => Buffer.from(f)));
      try {
        for (let i = 0; i < all.length; i += chunk) d.push(all.subarray(i, i + chunk));
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
      }
    }), { numRuns: runs });
  });
});
