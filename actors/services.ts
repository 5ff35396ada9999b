// The manager's actors as NATS micro-services (see bus/services.ts): what each one is called and
// which request subjects are its endpoints.
import type { NatsConnection } from '@nats-io/transport-node';
import { MicroService } from '../bus/services.ts';
import { subjects, sysctlSubjects } from '../bus/subjects.ts';

export interface ActorServices {
  allocator: MicroService;
  vetter: MicroService;
  sysctl: MicroService;
  stop(): void;
}

export function actorServices(nc: NatsConnection, version: string, metadata: Record<string, string>): ActorServices {
  const allocator = new MicroService(nc, {
    name: 'eci-allocator', version, metadata,
    description: 'Exclusive 65536-wide uid/gid ranges, one per container (KV eci-ranges)',
    endpoints: [
      { name: 'allocate', subject: subjects.allocatorAllocate },
      { name: 'free', subject: subjects.allocatorFree },
      { name: 'list', subject: subjects.allocatorList },
    ],
  });
  const vetter = new MicroService(nc, {
    name: 'eci-vetter', version, metadata,
    description: 'Verdicts on seccomp notifications of the mount family and setuid modes',
    endpoints: [{ name: 'decide', subject: subjects.vetterDecide('*'), queue_group: 'eci-vetter' }],
  });
  const sysctl = new MicroService(nc, {
    name: 'eci-sysctl', version, metadata,
    description: 'Per-container values of non-namespaced sysctls; host = max of baseline and live containers',
    endpoints: [
      { name: 'set', subject: sysctlSubjects.set },
      { name: 'get', subject: sysctlSubjects.get },
    ],
  });
  const all = [allocator, vetter, sysctl];
  for (const s of all) s.start();
  return { allocator, vetter, sysctl, stop: () => { for (const s of all) s.stop(); } };
}
