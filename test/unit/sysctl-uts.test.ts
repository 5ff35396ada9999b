// Docker's --domainname arrives as the sysctl kernel.domainname, which runc cannot write from inside a
// user namespace: the spec rewrite turns the UTS sysctls into the OCI fields eci sets itself.
import { describe, expect, it } from 'vitest';
import { utsSysctlsAsFields, type OciSpec } from '../../actors/runc/spec.ts';

const spec = (sysctl: Record<string, string>, extra: Record<string, unknown> = {}): OciSpec =>
  ({ ociVersion: '1.0.2', linux: { sysctl, namespaces: [{ type: 'uts' }] }, ...extra }) as unknown as OciSpec;

describe('utsSysctlsAsFields', () => {
  it('moves kernel.domainname and kernel.hostname into the fields, keeping the other sysctls', () => {
    const out = utsSysctlsAsFields(spec({ 'kernel.domainname': 'eci.test', 'kernel.hostname': 'h', 'net.ipv4.ip_forward': '1' })) as OciSpec & { hostname?: string; domainname?: string };
    expect(out.domainname).toBe('eci.test');
    expect(out.hostname).toBe('h');
    expect(out.linux!.sysctl).toEqual({ 'net.ipv4.ip_forward': '1' });
  });
  it('lets a field already set win, and leaves a spec without them as it is', () => {
    const out = utsSysctlsAsFields(spec({ 'kernel.hostname': 'from-sysctl' }, { hostname: 'from-field' })) as OciSpec & { hostname?: string };
    expect(out.hostname).toBe('from-field');
    expect(out.linux!.sysctl).toEqual({});
    const plain = spec({ 'net.core.somaxconn': '1024' });
    expect(utsSysctlsAsFields(plain)).toBe(plain);
  });
});
