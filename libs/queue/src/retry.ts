// Riding out Redis reconnects. ioredis re-sends a plain command that was in flight when the
// connection dropped, but it aborts pipelines and transactions caught half-way, and BullMQ uses
// both. Every Redis operation of the transport is idempotent (fixed keys, fixed job ids), so the
// answer is to run it again once the connection is back.

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EHOSTUNREACH', 'EAI_AGAIN']);

/**
 * True for errors that mean "the connection went away" (or "Redis is full for now": `OOM command
 * not allowed when used memory > 'maxmemory'`, which passes when memory is freed or the limit
 * raised), not "the command was wrong".
 */
export function isTransientRedisError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return (
    err.name === 'AbortError' ||
    err.name === 'MaxRetriesPerRequestError' ||
    (code !== undefined && TRANSIENT_CODES.has(code)) ||
    /Connection is closed|Command aborted due to connection close|Stream isn't writeable|LOADING|READONLY|TRYAGAIN|^OOM /.test(err.message)
  );
}

/** Options of `retryTransient`. */
export interface RetryOptions {
  /** Stops retrying (rejects with the signal's reason). Default: none. */
  signal?: AbortSignal;
  /** Called before each retry. Default: none. */
  onRetry?: (err: Error, attempt: number) => void;
  /** Longest wait between attempts (ms); waits double from 50 ms. Default 2000. */
  maxDelayMs?: number;
  /** Gives up (rethrows) after this long (ms). Default 10 minutes. */
  giveUpAfterMs?: number;
}

/**
 * Runs an idempotent Redis operation, again and again while it fails with a transient error
 * (connection lost, command aborted by a reconnect). Other errors are rethrown at once.
 */
export async function retryTransient<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { signal, onRetry, maxDelayMs = 2000, giveUpAfterMs = 600_000 } = options;
  const end = Date.now() + giveUpAfterMs;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      if (!isTransientRedisError(err) || Date.now() > end) throw err;
      onRetry?.(err as Error, attempt);
      await new Promise((r) => setTimeout(r, Math.min(maxDelayMs, 50 * 2 ** Math.min(attempt - 1, 10))));
    }
  }
}
