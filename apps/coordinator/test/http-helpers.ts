// Shared by the HTTP API tests: a real Coordinator on the real Redis under a unique key prefix and
// a temporary data dir, the HTTP server in front of it, and cleanup of all of it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { resolveTransportConfig, type TransportConfig } from '@stride/queue';
import { Coordinator, type CoordinatorOptions } from '../src/index.ts';
import { coordinatorPort, type OwnedCoordinatorPort } from '../src/http/adapter.ts';
import { buildHttpServer, type HttpServerOptions } from '../src/http/server.ts';

export interface Stack {
  config: TransportConfig;
  dataDir: string;
  coordinator: Coordinator;
  port: OwnedCoordinatorPort;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** A fresh prefix (hash-tagged like a Redis Cluster deployment) so tests never see each other's keys. */
export function testConfig(label: string, redisUrl?: string): TransportConfig {
  return resolveTransportConfig({ prefix: `{stride-http-${label}-${randomBytes(4).toString('hex')}}`, ...(redisUrl ? { redisUrl } : {}) });
}

/** Deletes every key under the prefix. */
export async function deletePrefix(config: TransportConfig): Promise<void> {
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
  try {
    const pattern = `${config.prefix.replace(/[{}[\]*?\\]/g, (c) => `\\${c}`)}:*`;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Resolves when `cond()` holds, polling; rejects after `timeoutMs` naming `what` (a function: described when it times out). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 20_000, everyMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Builds the stack. By default the coordinator does not take jobs (`runJobs: false`), so submitted
 * jobs stay queued and every state change is the test's doing.
 */
export async function makeStack(
  label: string,
  options: { server?: Partial<Omit<HttpServerOptions, 'coordinator'>>; coordinator?: Partial<Omit<CoordinatorOptions, 'config' | 'dataDir'>>; redisUrl?: string; start?: boolean } = {},
): Promise<Stack> {
  const config = testConfig(label, options.redisUrl);
  const dataDir = await mkdtemp(join(tmpdir(), `stride-http-${label}-`));
  const coordinator = new Coordinator({ config, dataDir, runJobs: false, ...options.coordinator });
  const port = coordinatorPort(coordinator, { config });
  const app = await buildHttpServer({ coordinator: port, ...options.server });
  if (options.start !== false) {
    await coordinator.start();
    await waitFor(() => port.redisReady(), 'the health client to connect', 5_000);
  }
  let closing: Promise<void> | undefined;
  return {
    config,
    dataDir,
    coordinator,
    port,
    app,
    close: () =>
      (closing ??= (async () => {
        await app.close();
        await coordinator.close();
        await port.close();
        if (options.start !== false) await deletePrefix(config);
        await rm(dataDir, { recursive: true, force: true });
      })()),
  };
}

/** A job spec that validates (tiny, so that a run of it is quick). */
export const SPEC = { model: 'lenet5', dataset: 'mnist', steps: 3, batchSize: 8, shards: 2 } as const;
