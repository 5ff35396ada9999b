// What the manager does when the bus's state changes: say so, send what waited, record a restart.
import type { Logger } from 'pino';
import type { BusStatus } from '../../bus/connect.ts';
import type { Publish } from '../../bus/events.ts';
import { subjects } from '../../bus/subjects.ts';

export interface BusStatusSink {
  log: Logger;
  url(): string | undefined;
  /** Send the outbox now (the bus is back). */
  kick(): void;
  publish: Publish;
}

export function logBusStatus(st: BusStatus, m: BusStatusSink): void {
  if (st.type === 'disconnected') m.log.warn({ nats: m.url() }, 'NATS disconnected: creates are refused until it is back');
  else if (st.type === 'reconnected') {
    m.log.info({ nats: m.url() }, 'NATS reconnected');
    m.kick();
  } else if (st.type === 'server-restarted') {
    m.log.warn({ oldPid: st.oldPid, pid: st.pid }, 'embedded nats-server died; restarted it');
    void m.publish(subjects.managerEvent('nats-restarted'), 'manager.nats-restarted', { pid: process.pid, oldNatsPid: st.oldPid, natsPid: st.pid });
  } else if (st.type === 'warning') m.log.warn(st.message);
  else if (st.type === 'consumers-swept') m.log.warn({ consumers: st.names }, 'deleted consumers on the event stream that would never expire (not made by eci)');
  else m.log.error({ err: st.error }, 'cannot restart the embedded nats-server; retrying');
}
