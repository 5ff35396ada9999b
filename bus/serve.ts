// One way for an actor to answer requests on the bus: subscribe, decode, handle, reply. A handler
// that throws (or a request that does not decode) is answered with one error shape,
// {ok: false, code, reason}, so callers and the $SRV counters (bus/services.ts replyError) read
// every endpoint's failures alike; an endpoint whose answer has its own failure form (a vetter
// verdict) maps errors to it instead.

/** An error answered on the bus. */
export interface ErrorReply { ok: false; code: string; reason: string }

/** The part of a NatsConnection an endpoint needs. */
export interface ServeConnection {
  subscribe(subject: string, o: { queue?: string; callback(err: Error | null, m: RequestMsg): void }): { unsubscribe(): void };
}
export interface RequestMsg { string(): string; respond(data: string): boolean }

export interface Endpoint<Req, Res> {
  subject: string;
  queue?: string;
  /** Request payload -> request (default: JSON). A throw is a malformed request (EBADREQ). */
  decode?(text: string): Req;
  handle(req: Req): Res | Promise<Res>;
  /** Answer -> payload (default: JSON). */
  encode?(res: Res | ErrorReply): string;
  /** The answer to a failure (default: errorReply). */
  onError?(e: unknown): Res | ErrorReply;
}

/** What a failure looks like on the bus: its `code` if it has one (EciError-style), else EINTERNAL. */
export function errorReply(e: unknown): ErrorReply {
  const code = (e as { code?: unknown })?.code;
  return { ok: false, code: typeof code === 'string' && code ? code : 'EINTERNAL', reason: (e as Error)?.message ?? String(e) };
}

/** A request that does not decode or names nothing usable: answered as EBADREQ. */
export class BadRequestError extends Error {
  readonly code = 'EBADREQ';
  /** What was wrong, without the 'malformed request' lead. */
  constructor(readonly detail: string) {
    super(`malformed request: ${detail}`);
  }
}

/** Serves one endpoint; returns its subscription. */
export function serve<Req, Res>(nc: ServeConnection, ep: Endpoint<Req, Res>): { unsubscribe(): void } {
  const encode = ep.encode ?? ((r: Res | ErrorReply) => JSON.stringify(r));
  const onError = ep.onError ?? errorReply;
  return nc.subscribe(ep.subject, {
    queue: ep.queue,
    callback: (err, m) => {
      if (err) return;
      let req: Req;
      try {
        const text = m.string();
        req = ep.decode ? ep.decode(text) : (text ? JSON.parse(text) : undefined) as Req;
      } catch (e) {
        m.respond(encode(onError(new BadRequestError((e as Error).message))));
        return;
      }
      let out: Res | Promise<Res>;
      try {
        out = ep.handle(req);
      } catch (e) {
        m.respond(encode(onError(e)));
        return;
      }
      // A synchronous answer goes out at once (the vetter's verdicts are on a syscall's path).
      if (!(out instanceof Promise)) { m.respond(encode(out)); return; }
      out.then((r) => m.respond(encode(r)), (e) => m.respond(encode(onError(e))));
    },
  });
}
