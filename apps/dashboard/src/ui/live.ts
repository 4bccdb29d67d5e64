// The live event stream (`GET /api/events`, server-sent events) shared by every view.
//
// Read with fetch rather than EventSource so the bearer token can travel in a header when the
// API requires one for reads. Reconnects with backoff and passes `Last-Event-ID`; a view that
// must not miss anything refetches its state on `open` (events sent while disconnected are gone).
import { UNAUTHORIZED_EVENT, getToken } from './api.ts';
import type { EventMap } from './types.ts';

export type StreamStatus = 'connecting' | 'open' | 'offline';

type Listener<K extends keyof EventMap> = (data: EventMap[K]) => void;

interface StreamListeners {
  status: Set<(status: StreamStatus) => void>;
  events: { [K in keyof EventMap]: Set<Listener<K>> };
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

export class LiveStream {
  private readonly listeners: StreamListeners = {
    status: new Set(),
    events: { job: new Set(), step: new Set(), eval: new Set(), checkpoint: new Set(), workers: new Set() },
  };
  private current: StreamStatus = 'connecting';
  private abort?: AbortController;
  private lastEventId?: string;
  private retryMs = RETRY_MIN_MS;
  private stopped = false;
  /** The token (or '' for none) last refused with a 401. */
  private refusedToken?: string;

  constructor(private readonly url = '/api/events') {}

  get status(): StreamStatus {
    return this.current;
  }

  /** Listens to one event type; returns the unsubscribe function. */
  on<K extends keyof EventMap>(type: K, fn: Listener<K>): () => void {
    const set = this.listeners.events[type] as Set<Listener<K>>;
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Listens to status changes (called at once with the current status). */
  onStatus(fn: (status: StreamStatus) => void): () => void {
    this.listeners.status.add(fn);
    fn(this.current);
    return () => this.listeners.status.delete(fn);
  }

  start(): void {
    this.stopped = false;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private setStatus(s: StreamStatus): void {
    if (s === this.current) return;
    this.current = s;
    for (const fn of this.listeners.status) fn(s);
  }

  private dispatch(type: string, data: string): void {
    if (!(type in this.listeners.events)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      console.warn(`live: event ${type} carries invalid JSON: ${data.slice(0, 200)}`);
      return;
    }
    for (const fn of this.listeners.events[type as keyof EventMap] as Set<(d: unknown) => void>) {
      try {
        fn(parsed);
      } catch (err) {
        console.error(`live: a ${type} listener failed`, err);
      }
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.setStatus('connecting');
      try {
        await this.connectOnce();
      } catch (err) {
        if (this.stopped) return;
        if ((err as Error).name !== 'AbortError') console.debug('live: stream ended:', (err as Error).message);
      }
      if (this.stopped) return;
      this.setStatus('offline');
      await new Promise((r) => setTimeout(r, this.retryMs));
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    }
  }

  /** One connection: resolves when the server ends the stream, rejects on network errors. */
  private async connectOnce(): Promise<void> {
    this.abort = new AbortController();
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const token = getToken();
    if (token) headers.authorization = `Bearer ${token}`;
    if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
    const res = await fetch(this.url, { headers, signal: this.abort.signal, cache: 'no-store' });
    if (res.status === 401 && this.refusedToken !== (token ?? '')) {
      // Once per token: the retries would otherwise reopen the dialog every few seconds.
      this.refusedToken = token ?? '';
      window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: `GET ${this.url}: the API needs a token for reads.` }));
    }
    if (!res.ok || !res.body) throw new Error(`GET ${this.url}: HTTP ${res.status}`);
    this.setStatus('open');
    this.retryMs = RETRY_MIN_MS;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    // SSE framing: fields until a blank line; `data:` lines join with \n; `:` lines are comments.
    let buffer = '';
    let type = 'message';
    let data: string[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let nl: number;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        if (nl === buffer.length - 1 && buffer[nl] === '\r') break; // maybe the first half of \r\n
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) this.dispatch(type, data.join('\n'));
          type = 'message';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') type = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id') this.lastEventId = val;
        else if (field === 'retry' && /^\d+$/.test(val)) this.retryMs = Math.max(RETRY_MIN_MS, Number(val));
      }
    }
  }
}

/** The one stream of the page. */
export const live = new LiveStream();
