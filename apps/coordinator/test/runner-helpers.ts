// Shared by the job-runner tests: coordinator and worker processes spawned with `node --import
// tsx`, their output captured, on a unique Redis prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { resolveTransportConfig, type TransportConfig } from '@stride/queue';

export const COORDINATOR_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
// Spawned as a process, not imported: apps do not depend on each other.
export const WORKER_MAIN = fileURLToPath(new URL('../../worker/src/main.ts', import.meta.url));

export function runnerConfig(label: string): TransportConfig {
  return resolveTransportConfig({ prefix: `{stride-test-${label}-${randomBytes(4).toString('hex')}}` });
}

export interface Spawned {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in the output (past or future). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  readonly exited: Promise<number | string>;
}

export function spawnNode(script: string, args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    text += chunk.toString();
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const waitFor = (re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from pid ${child.pid}:\n${text.slice(-2000)}`));
      }, timeoutMs);
      const check = (): void => {
        const m = text.match(re);
        if (!m) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(m);
      };
      waiters.add(check);
      check();
    });
  return { child, output: () => text, waitFor, exited };
}

/** SIGKILLs what still runs and waits for the exits. */
export async function killAll(procs: Spawned[]): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

/** Deletes every Redis key under `prefix`. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** Polls `cond` until true; rejects after `timeoutMs` naming `what`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
