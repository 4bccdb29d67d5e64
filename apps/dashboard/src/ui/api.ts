// The coordinator's HTTP API as the browser sees it (through the dashboard server's proxy, same
// origin). Errors come back as `{ error: { code, message, field? } }` and become an ApiError.

const TOKEN_KEY = 'stride.token';

/** Fired on `window` when a call answers 401 (the token dialog opens). */
export const UNAUTHORIZED_EVENT = 'stride:unauthorized';

/** A failed API call: HTTP status, the API's error code, its message and the field it names. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

// The token lives in sessionStorage: it goes when the tab closes, and is not shared with other
// tabs or kept on disk for whoever uses the browser next. Earlier versions kept it in localStorage.

/** The bearer token kept in this tab (asked for when a call answers 401). */
export function getToken(): string | undefined {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function setToken(token: string | undefined): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lasts for this call only.
  }
}

/** Removes a token an earlier version left in localStorage (called once, at load). */
export function dropStoredToken(): void {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: nothing was stored.
  }
}

async function toApiError(res: Response, what: string): Promise<ApiError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const e = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
  if (e && typeof e.message === 'string') {
    return new ApiError(res.status, typeof e.code === 'string' ? e.code : 'error', e.message, typeof e.field === 'string' ? e.field : undefined);
  }
  if (res.status === 502 || res.status === 503 || res.status === 504) {
    return new ApiError(res.status, 'unavailable', `${what}: the coordinator is not reachable (HTTP ${res.status})`);
  }
  return new ApiError(res.status, 'http_error', `${what}: HTTP ${res.status} ${res.statusText}`);
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, 'network', `${method} ${path}: the dashboard server is not reachable (${(err as Error).message})`);
  }
  if (!res.ok) {
    const err = await toApiError(res, `${method} ${path}`);
    if (res.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: err.message }));
    throw err;
  }
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await call('GET', path)).json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  return (await (await call('POST', path, body)).json()) as T;
}

/** Downloads a binary resource (checkpoints). */
export async function getBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await (await call('GET', path)).arrayBuffer());
}
