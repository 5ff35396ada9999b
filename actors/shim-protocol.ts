// The wire format between the C launcher (bin/eci-runc -> native/cmd/eci-runc.c) and the manager,
// over a unix stream socket. NUL-separated fields, so argv needs no escaping and C needs no JSON:
//   request  ECI1 \0 <cwd> \0 <n> \0 <arg1> \0 ... <argn> \0
//   report   EXIT \0 <status> \0                 (after a `spawn`, the child's exit status)
//   reply    <action> \0 <n> \0 <f1> \0 ... <fn> \0
// actions: exec argv (replace the launcher), spawn argv (run, wait, report EXIT, finish as the
// manager's next reply says; that reply may be sent before the report arrives, and read after it),
// pass (only as that next reply: exit with the child's status), tell argv (run, wait, report EXIT and exit with the child's status at
// once: for calls whose report changes nothing the engine sees, it saves a round trip), fifo path pid argv
// (`start` of a created container: the launcher opens runc's exec fifo at path itself, as runc start does,
// while init pid lives; where it cannot, it runs argv as `tell` does; then as `tell`), error message
// (print `eci: message`, exit 1), done status (exit with status), print text status.
// Control clients (bin/eci) send CTL1 \0 <json> \0 and get <json> \0 back.
// `eci run`'s client (native/cmd/eci-run.c) sends
//   run      RUN1 \0 <cwd> \0 <pid> \0 <n> \0 <arg1> ... \0 <m> \0 <KEY=VALUE1> ... \0   (argv after `run`, its environment)
// and gets `start stdin argv` (run argv, stdin inherited when stdin is 1, else /dev/null; argv is
// `<launcher> --root <R> run ... <id>`: after a hangup with no manager connected, the client runs
// `<launcher> --root <R> kill <id> KILL` itself), `print` (help) or
// `fail text status` (write text to stderr, exit status); after a start it sends
//   run exit RUNX \0 <status> \0 <started 1|0> \0 <stderr tail> \0   (0: a signal came before it started)
// and gets `done status` or `fail`. Meanwhile it may send SIGN \0 <signo> \0 (a signal it got).

export type ShimReply =
  | { action: 'exec'; argv: string[] }
  | { action: 'spawn'; argv: string[] }
  | { action: 'tell'; argv: string[] }
  | { action: 'fifo'; fifo: string; pid: number; argv: string[] }
  | { action: 'error'; message: string }
  | { action: 'done'; status: number }
  | { action: 'pass' }
  | { action: 'print'; text: string; status: number }
  | { action: 'start'; stdin: boolean; argv: string[] }
  | { action: 'fail'; text: string; status: number };

export type ShimFrame =
  | { kind: 'request'; cwd: string; argv: string[] }
  | { kind: 'exit'; status: number }
  | { kind: 'control'; body: unknown }
  | { kind: 'run'; cwd: string; pid: number; argv: string[]; env: Record<string, string> }
  | { kind: 'run-exit'; status: number; started: boolean; stderrTail: string }
  | { kind: 'signal'; signal: number };

export class ProtocolError extends Error {
  readonly code = 'EPROTO';
}

export function encodeReply(r: ShimReply): Buffer {
  const fields =
    r.action === 'exec' || r.action === 'spawn' || r.action === 'tell' ? r.argv
      : r.action === 'fifo' ? [r.fifo, String(r.pid), ...r.argv]
      : r.action === 'error' ? [r.message]
        : r.action === 'done' ? [String(r.status)]
          : r.action === 'start' ? [r.stdin ? '1' : '0', ...r.argv]
            : r.action === 'pass' ? []
              : [r.text, String(r.status)];
  return Buffer.from([r.action, String(fields.length), ...fields].map((f) => f + '\0').join(''));
}

const MAX_FIELDS = 4096;
const MAX_FRAME = 1 << 20;

/** Incremental decoder: feed chunks, take complete frames. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): ShimFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.buf.length > MAX_FRAME) throw new ProtocolError('frame too large');
    const frames: ShimFrame[] = [];
    for (;;) {
      const r = this.take();
      if (!r) break;
      frames.push(r);
    }
    return frames;
  }

  private fields(start: number, n: number): { fields: string[]; end: number } | undefined {
    const out: string[] = [];
    let pos = start;
    for (let i = 0; i < n; i++) {
      const z = this.buf.indexOf(0, pos);
      if (z < 0) return undefined;
      out.push(this.buf.toString('utf8', pos, z));
      pos = z + 1;
    }
    return { fields: out, end: pos };
  }

  private take(): ShimFrame | undefined {
    const head = this.fields(0, 1);
    if (!head) return undefined;
    const magic = head.fields[0];
    if (magic === 'ECI1') {
      const h = this.fields(head.end, 2);
      if (!h) return undefined;
      const n = Number(h.fields[1]);
      if (!Number.isInteger(n) || n < 0 || n > MAX_FIELDS) throw new ProtocolError(`bad argument count ${JSON.stringify(h.fields[1])}`);
      const a = this.fields(h.end, n);
      if (!a) return undefined;
      this.buf = this.buf.subarray(a.end);
      return { kind: 'request', cwd: h.fields[0], argv: a.fields };
    }
    if (magic === 'EXIT') {
      const s = this.fields(head.end, 1);
      if (!s) return undefined;
      this.buf = this.buf.subarray(s.end);
      const status = Number(s.fields[0]);
      if (!Number.isInteger(status)) throw new ProtocolError(`bad exit status ${JSON.stringify(s.fields[0])}`);
      return { kind: 'exit', status };
    }
    if (magic === 'CTL1') {
      const s = this.fields(head.end, 1);
      if (!s) return undefined;
      this.buf = this.buf.subarray(s.end);
      try {
        return { kind: 'control', body: JSON.parse(s.fields[0]) };
      } catch {
        throw new ProtocolError('control frame is not JSON');
      }
    }
    if (magic === 'RUN1') return this.takeRun(head.end);
    if (magic === 'RUNX') {
      const s = this.fields(head.end, 3);
      if (!s) return undefined;
      this.buf = this.buf.subarray(s.end);
      const status = Number(s.fields[0]);
      if (!Number.isInteger(status)) throw new ProtocolError(`bad exit status ${JSON.stringify(s.fields[0])}`);
      return { kind: 'run-exit', status, started: s.fields[1] === '1', stderrTail: s.fields[2] };
    }
    if (magic === 'SIGN') {
      const s = this.fields(head.end, 1);
      if (!s) return undefined;
      this.buf = this.buf.subarray(s.end);
      const signal = Number(s.fields[0]);
      if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new ProtocolError(`bad signal ${JSON.stringify(s.fields[0])}`);
      return { kind: 'signal', signal };
    }
    throw new ProtocolError(`unknown frame ${JSON.stringify(magic.slice(0, 16))}`);
  }

  private count(field: string): number {
    const n = Number(field);
    if (!Number.isInteger(n) || n < 0 || n > MAX_FIELDS) throw new ProtocolError(`bad argument count ${JSON.stringify(field)}`);
    return n;
  }

  private takeRun(start: number): ShimFrame | undefined {
    const h = this.fields(start, 3);
    if (!h) return undefined;
    const pid = Number(h.fields[1]);
    if (!Number.isInteger(pid) || pid < 1) throw new ProtocolError(`bad pid ${JSON.stringify(h.fields[1])}`);
    const a = this.fields(h.end, this.count(h.fields[2]));
    if (!a) return undefined;
    const m = this.fields(a.end, 1);
    if (!m) return undefined;
    const e = this.fields(m.end, this.count(m.fields[0]));
    if (!e) return undefined;
    this.buf = this.buf.subarray(e.end);
    const env: Record<string, string> = Object.create(null); // keys are the client's: no inherited ones
    for (const kv of e.fields) {
      const eq = kv.indexOf('=');
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return { kind: 'run', cwd: h.fields[0], pid, argv: a.fields, env };
  }
}
