import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, parseSettings } from '../../actors/settings.ts';

describe('admin settings', () => {
  it('defaults fill what the file leaves out', () => {
    const s = parseSettings('{"fileSharing": ["/data/"], "idRange": {"base": 200000}}');
    expect(s.fileSharing).toEqual(['/data']);
    expect(s.idRange).toEqual({ base: 200000, size: 65536, count: 1024 });
    expect(s.enhancedContainerIsolation).toEqual({ value: true, locked: true });
    expect(parseSettings('{}')).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings('{"auditTrail": {"maxBytes": 1073741824}}').auditTrail).toEqual({ maxBytes: 1073741824, maxAgeDays: 30, identicalPerSecond: 5, decisionsPerSecond: 20 });
  });
  it('takes sysctl ceilings per host-max entry over the defaults', () => {
    const s = parseSettings('{"sysctlCeilings": {"fs.file-max": 4000000}}');
    expect(s.sysctlCeilings['fs.file-max']).toBe(4000000);
    expect(s.sysctlCeilings['fs.nr_open']).toBe(DEFAULT_SETTINGS.sysctlCeilings['fs.nr_open']);
    expect(() => parseSettings('{"sysctlCeilings": {"kernel.panic": 1}}', 'f')).toThrow('f: sysctlCeilings.kernel.panic: not a host-max sysctl');
    expect(() => parseSettings('{"sysctlCeilings": {"fs.nr_open": 10}}', 'f')).toThrow('f: sysctlCeilings.fs.nr_open: expected an integer from 64 to 2147483584, got 10');
    expect(() => parseSettings('{"sysctlCeilings": [1]}', 'f')).toThrow('f: sysctlCeilings: expected an object');
  });

  it('readOnlySystemFiles: the time zone files by default, replaced by the file, absolute paths only', () => {
    expect(parseSettings('{}').readOnlySystemFiles).toEqual(['/etc/localtime', '/etc/timezone', '/usr/share/zoneinfo']);
    expect(parseSettings('{"readOnlySystemFiles": []}').readOnlySystemFiles).toEqual([]);
    expect(() => parseSettings('{"readOnlySystemFiles": ["etc"]}', 'f')).toThrow('f: readOnlySystemFiles[0]: expected an absolute path, got "etc"');
  });

  it('names the field and the reason', () => {
    const cases: [string, string][] = [
      ['{', 'f: not valid JSON'],
      ['[]', 'f: : expected an object'],
      ['{"fileshare": []}', 'f: fileshare: unknown field'],
      ['{"constructor": 1}', 'f: constructor: unknown field'],
      ['{"volumes": {"toString": true}}', 'f: volumes.toString: unknown field'],
      ['{"fileSharing": "/home"}', 'f: fileSharing: expected an array of absolute paths'],
      ['{"fileSharing": ["home"]}', 'f: fileSharing[0]: expected an absolute path, got "home"'],
      ['{"restrictedPaths": ["/a", 3]}', 'f: restrictedPaths[1]: expected an absolute path, got 3'],
      ['{"idRange": {"size": 1000}}', 'f: idRange.size: expected an integer from 65536'],
      ['{"idRange": {"count": 1.5}}', 'f: idRange.count: expected an integer'],
      ['{"enhancedContainerIsolation": {"value": "yes"}}', 'f: enhancedContainerIsolation.value: expected true or false, got "yes"'],
      ['{"dockerSocketMount": {"imageList": {"images": ["Bad Name"]}}}', 'f: dockerSocketMount.imageList.images[0]: expected an image reference'],
      ['{"idRange": {"base": 4294000000, "count": 100}}', 'f: idRange: base + count x size goes past'],
      ['{"auditTrail": {"maxBytes": 1000}}', 'f: auditTrail.maxBytes: expected an integer from 1048576'],
      ['{"auditTrail": {"maxAgeDays": 0}}', 'f: auditTrail.maxAgeDays: expected an integer from 1 to 3650, got 0'],
      ['{"auditTrail": {"identicalPerSecond": 30}}', 'f: auditTrail.identicalPerSecond: expected at most decisionsPerSecond (20), got 30'],
    ];
    for (const [text, msg] of cases) expect(() => parseSettings(text, 'f'), text).toThrow(msg);
  });
  it('accepts image references with tags, wildcards and digests', () => {
    const imgs = ['docker:*', 'docker.io/library/docker:24', 'repo/x@sha256:' + 'a'.repeat(64), '*'];
    expect(parseSettings(JSON.stringify({ dockerSocketMount: { imageList: { images: imgs } } })).dockerSocketMount.imageList.images).toEqual(imgs);
  });
});
