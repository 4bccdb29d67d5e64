// Reading the coordinator's settings from the environment; errors name the variable.
import type { ApiOptions } from './run.ts';

/** An unset variable and an empty one (docker-compose's `${STRIDE_TOKEN:-}`) both mean "none". */
export const envText = (env: NodeJS.ProcessEnv, name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);

export function envInt(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = envText(env, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

/** HOST, PORT, STRIDE_TOKEN, STRIDE_READ_TOKEN, CORS_ORIGIN, STRIDE_BODY_LIMIT. */
export function apiOptionsFromEnv(env: NodeJS.ProcessEnv): ApiOptions {
  return {
    host: envText(env, 'HOST') ?? '127.0.0.1',
    port: envInt(env, 'PORT', 0, 65535) ?? 4000,
    writeToken: envText(env, 'STRIDE_TOKEN'),
    readToken: envText(env, 'STRIDE_READ_TOKEN'),
    corsOrigin: envText(env, 'CORS_ORIGIN'),
    bodyLimit: envInt(env, 'STRIDE_BODY_LIMIT', 1, 1 << 30),
  };
}
