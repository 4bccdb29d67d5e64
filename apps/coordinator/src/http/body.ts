// Request bodies: strict JSON with no prototype-poisoning keys.
//
// `JSON.parse` itself is safe (it defines `__proto__` as an own property), but the spec is later
// spread and merged with defaults, where such a key would reach a prototype. So a body holding
// `__proto__`, or `constructor.prototype`, anywhere is rejected with the path of the key.
import { badRequest } from './errors.ts';

/** Finds the first forbidden key in a parsed JSON value and returns its dotted path. */
export function findForbiddenKey(value: unknown, path = ''): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findForbiddenKey(value[i], `${path}[${i}]`);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const here = path ? `${path}.${key}` : key;
    if (key === '__proto__') return here;
    const child = (value as Record<string, unknown>)[key];
    if (key === 'constructor' && child !== null && typeof child === 'object' && Object.hasOwn(child, 'prototype')) {
      return `${here}.prototype`;
    }
    const hit = findForbiddenKey(child, here);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/** Deepest nesting of arrays and objects accepted in a body; a job spec nests about 5 levels. */
export const MAX_BODY_DEPTH = 64;

/**
 * Nesting depth of a JSON text (brackets outside strings), scanning no further than `limit` + 1
 * levels. Checked before parsing: the walks over the parsed value are recursive, and a 1 MiB body
 * of `[[[[…` would otherwise overflow the stack (a 500, not a 400).
 */
export function jsonDepth(text: string, limit = MAX_BODY_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return max;
}

/**
 * Parses a JSON request body. An empty body parses to `undefined` (so `POST /api/jobs/:id/cancel`
 * with a JSON content type and no body is fine); a handler that needs a body says so itself.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  if (jsonDepth(text) > MAX_BODY_DEPTH) throw badRequest('too_deep', `request body nests arrays and objects deeper than ${MAX_BODY_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest('invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
  const bad = findForbiddenKey(value);
  if (bad !== undefined) throw badRequest('forbidden_key', `${bad}: the key "${bad.split('.').pop()}" is not allowed in a request body`, bad);
  return value;
}
