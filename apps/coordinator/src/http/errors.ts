// The HTTP API's one error shape: `{ error: { code, message, field? } }`, with a status code.
// Every failure a handler can produce goes through `toHttpError`, so the dashboard, the CLI and
// curl users all see the same body whatever went wrong (validation, auth, Redis, a bug).

/** Body of every non-2xx JSON response. */
export interface ErrorBody {
  error: {
    /** Stable, machine-readable code such as `invalid_job_spec`, `not_found`, `unauthorized`. */
    code: string;
    /** Human-readable explanation naming what was wrong and where. */
    message: string;
    /** Dotted path of the offending field in the request body, when there is one (`model.layers[2].stride`). */
    field?: string;
  };
}

/** An error that already knows its HTTP status and wire code. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

/** Redis (or the queue behind it) did not answer: the call cannot be served right now. */
export class ServiceUnavailableError extends HttpError {
  constructor(message: string) {
    super(503, 'service_unavailable', message);
  }
}

export const badRequest = (code: string, message: string, field?: string): HttpError => new HttpError(400, code, message, field);
export const notFound = (message: string): HttpError => new HttpError(404, 'not_found', message);

/** Fastify's own error codes → our status and code. */
const FASTIFY_CODES: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_VALIDATION: { status: 400, code: 'invalid_request' },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_url' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'url_too_long' },
};

/** Message fragments of ioredis / BullMQ when Redis cannot be reached. */
const REDIS_DOWN = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Connection is closed|connection (?:is )?closed|Stream isn't writeable|MaxRetriesPerRequest|enableOfflineQueue/i;

/** True when an error says Redis is unreachable, whichever client raised it. */
export function isRedisUnavailable(err: unknown): boolean {
  if (err instanceof ServiceUnavailableError) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE)$/.test(code)) return true;
  return REDIS_DOWN.test(err.message) || (err.name === 'MaxRetriesPerRequestError');
}

/**
 * Maps anything thrown by a handler (or by Fastify before the handler) to an HttpError.
 * Errors of the engine's job-spec validation are recognised by `name` (they may have crossed a
 * module or thread boundary) and keep the field they name (`path`); unknown errors become a 500
 * whose message is kept (the API is for operators, and a bug report needs it).
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof Error && /^OOM command not allowed/.test(err.message)) {
    // Redis reached `maxmemory` (noeviction): nothing was written; the call can be made again once memory is freed.
    return new ServiceUnavailableError(`Redis is out of memory (maxmemory reached); nothing was stored, try again later: ${err.message}`);
  }
  if (isRedisUnavailable(err)) {
    return new ServiceUnavailableError(`Redis is unreachable: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; statusCode?: unknown; field?: unknown; path?: unknown; validation?: unknown };
    if (typeof e.code === 'string' && e.code in FASTIFY_CODES) {
      const { status, code } = FASTIFY_CODES[e.code];
      return new HttpError(status, code, e.message, fieldFromFastify(e));
    }
    // The engine's JobSpecError (and the cnn spec errors it wraps) carry the field as `path`.
    const rawField = typeof e.field === 'string' ? e.field : typeof e.path === 'string' ? e.path : undefined;
    const field = rawField === '' ? undefined : rawField;
    if (/^(JobSpecError|ModelSpecError|OptimizerSpecError)$/.test(e.name)) {
      return new HttpError(400, 'invalid_job_spec', e.message, field);
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600) {
      return new HttpError(e.statusCode, typeof e.code === 'string' ? e.code.toLowerCase() : 'error', e.message);
    }
    return new HttpError(500, 'internal_error', e.message);
  }
  return new HttpError(500, 'internal_error', String(err));
}

/** Ajv validation errors carry the instance path (`/steps`); turn it into a dotted field name. */
function fieldFromFastify(e: { validation?: unknown }): string | undefined {
  if (!Array.isArray(e.validation) || e.validation.length === 0) return undefined;
  const v = e.validation[0] as { instancePath?: string; params?: { missingProperty?: string; additionalProperty?: string } };
  const base = (v.instancePath ?? '').split('/').filter(Boolean).join('.');
  const leaf = v.params?.missingProperty ?? v.params?.additionalProperty;
  return [base, leaf].filter((s) => s !== undefined && s !== '').join('.') || undefined;
}
