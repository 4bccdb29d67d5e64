// Server-sent events over a hijacked Fastify reply.
//
// One stream per client. The caller subscribes to whatever it wants to forward and returns the
// unsubscribe function; this module owns the socket: headers, framing, heartbeat comments that
// keep proxies from closing an idle stream, back-pressure (a client that stops reading is cut
// off rather than buffered without end) and cleanup on disconnect or server close.
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Sends one event; returns false once the stream is closed. */
export type SendEvent = (event: string, data: unknown) => boolean;

export interface EventStreamOptions {
  /** Interval of `: heartbeat` comment lines, ms. Default 15 000. */
  heartbeatMs?: number;
  /** A client whose unsent output exceeds this many bytes is disconnected. Default 4 MiB. */
  maxBufferedBytes?: number;
  /** `retry:` hint sent to the browser's EventSource on connect, ms. Default 2 000. */
  retryMs?: number;
}

/** Live streams, so the server can end them all when it closes (else `close()` would wait on them). */
export class EventStreams {
  private readonly open = new Set<() => void>();
  private nextId = 1;

  get size(): number {
    return this.open.size;
  }

  /**
   * Turns `reply` into an event stream. `subscribe(send)` is called once and must return its
   * unsubscribe; it is called exactly once, whichever side ends the stream.
   */
  start(request: FastifyRequest, reply: FastifyReply, subscribe: (send: SendEvent) => () => void, options: EventStreamOptions = {}): void {
    const { heartbeatMs = 15_000, maxBufferedBytes = 4 * 1024 * 1024, retryMs = 2_000 } = options;
    const res = reply.raw;
    reply.hijack();
    // Headers set by hooks (CORS, for one) are kept: hijack skips Fastify's own header writing.
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v as string | number | string[];
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx and similar proxies buffer responses unless told not to.
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${retryMs}\n: connected\n\n`);

    let closed = false;
    // Filled in once `subscribe` returns; `close` may run before that (a client that left at once).
    const subscription: { unsubscribe?: () => void } = {};
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      this.open.delete(close);
      try {
        subscription.unsubscribe?.();
      } catch (err) {
        request.log.error({ err }, 'sse: unsubscribe failed');
      }
      // Destroy rather than end: a stream that ends is over for good (the client left, or the
      // server is closing and the browser's EventSource will reconnect elsewhere), and a
      // kept-alive socket would only hold up the server's close.
      res.destroy();
    };
    const write = (chunk: string): boolean => {
      if (closed) return false;
      if (res.writableLength > maxBufferedBytes) {
        request.log.warn({ buffered: res.writableLength }, 'sse: client is not reading, disconnecting it');
        close();
        return false;
      }
      res.write(chunk);
      return true;
    };
    const send: SendEvent = (event, data) => write(`id: ${this.nextId++}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

    const timer = setInterval(() => write(`: heartbeat ${Date.now()}\n\n`), heartbeatMs);
    timer.unref();
    this.open.add(close);
    // The response closes when the client hangs up (or the socket dies): that ends the stream.
    res.on('close', close);
    res.on('error', close);
    const unsubscribe = subscribe(send);
    if (closed) unsubscribe();
    else subscription.unsubscribe = unsubscribe;
  }

  /** Ends every open stream (server shutdown). */
  closeAll(): void {
    for (const close of [...this.open]) close();
  }
}
