// Bearer-token checks for the HTTP API.
//
// Tokens are compared in constant time: both sides are hashed with SHA-256 first, so the compare
// runs on equal-length buffers and the time taken says nothing about the token's length or prefix.
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpError } from './errors.ts';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time equality of two secrets. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Extracts the token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : undefined;
}

export interface AuthOptions {
  /** Required on every state-changing call (any method but GET/HEAD/OPTIONS) when set. */
  writeToken?: string;
  /** Required on reads when set; the write token is accepted for reads too. */
  readToken?: string;
}

/**
 * Checks one request. Throws a 401 HttpError naming what is missing; returns when the request
 * may go on. Reads are open unless a read token is configured; writes are open unless a write
 * token is configured (the server then binds to 127.0.0.1 only, see main.ts).
 */
export function checkAuth(opts: AuthOptions, method: string, authorization: string | string[] | undefined): void {
  const isRead = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
  const accepted = isRead ? [opts.readToken, opts.writeToken] : [opts.writeToken];
  const required = isRead ? opts.readToken !== undefined : opts.writeToken !== undefined;
  if (!required) return;
  const given = bearerToken(authorization);
  if (given === undefined) {
    throw new HttpError(401, 'unauthorized', `${method} needs an "Authorization: Bearer <token>" header (${isRead ? 'STRIDE_READ_TOKEN' : 'STRIDE_TOKEN'} is set on the server)`);
  }
  // Compare against every accepted token, without short-circuiting, to keep the timing flat.
  let ok = false;
  for (const t of accepted) if (t !== undefined && safeEqual(given, t)) ok = true;
  if (!ok) throw new HttpError(401, 'unauthorized', `the bearer token is not valid for ${method}`);
}
