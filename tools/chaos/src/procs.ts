// Child processes of a chaos run: Stride apps started with `node --import tsx`, a private
// redis-server, their output captured line by line, signals sent by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export const COORDINATOR_MAIN = fileURLToPath(new URL('../../../apps/coordinator/src/main.ts', import.meta.url));
export const WORKER_MAIN = fileURLToPath(new URL('../../../apps/worker/src/main.ts', import.meta.url));

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the first match of `re` in the output (past or future); rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>;
  alive(): boolean;
}

/** Spawns `command`; `onLine` sees every complete output line as it arrives. */
export function spawnProcess(command: string, args: string[], env: Record<string, string>, onLine?: (line: string) => void): Spawned {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let partial = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    const s = chunk.toString();
    text += s;
    if (onLine) {
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      for (const l of lines) onLine(l);
    }
    for (const w of [...waiters]) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    pid: child.pid!,
    output: () => text,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = text.match(re);
          if (!m) return;
          cleanup();
          resolve(m);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${command} pid ${child.pid}:\n${text.slice(-2000)}`));
        }, timeoutMs);
        const onExit = (): void => {
          cleanup();
          reject(new Error(`${command} pid ${child.pid} exited while waiting for ${re}:\n${text.slice(-2000)}`));
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', onExit);
        };
        waiters.add(check);
        child.once('exit', onExit);
        check();
      });
    },
  };
}

export const spawnNode = (script: string, args: string[], env: Record<string, string>, onLine?: (line: string) => void): Spawned =>
  spawnProcess(process.execPath, ['--import', 'tsx', script, ...args], env, onLine);

/** A worker process, resolved once it takes jobs, with its id (BullMQ's `processedBy`). */
export async function startWorker(env: Record<string, string>, threads: number): Promise<Spawned & { id: string }> {
  const w = spawnNode(WORKER_MAIN, ['--threads', String(threads)], env);
  const m = await w.waitFor(/worker (\S+): \d+ threads/, 240_000);
  return Object.assign(w, { id: m[1] });
}

/** SIGKILLs what still runs and waits for the exits. */
export async function killAll(procs: Iterable<Spawned>): Promise<void> {
  const list = [...procs];
  for (const p of list) if (p.alive()) p.child.kill('SIGKILL');
  await Promise.all(list.map((p) => p.exited));
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error(`freePort: no address (${String(address)})`))));
    });
  });
}

/**
 * A private `redis-server` (never the shared 6379): no RDB snapshots, AOF with fsync every second
 * when `aof`, its files under `dir`. It can be shut down cleanly, SIGKILLed and started again on
 * the same port and directory.
 */
export class RedisServer {
  private proc?: Spawned;

  constructor(
    readonly port: number,
    readonly dir: string,
    readonly aof: boolean,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.proc?.alive()) throw new Error(`redis-server on port ${this.port} already runs (pid ${this.proc.pid})`);
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', this.aof ? 'yes' : 'no', '--appendfsync', 'everysec', '--dir', this.dir, '--maxmemory-policy', 'noeviction'];
    this.proc = spawnProcess('redis-server', args, {});
    await this.proc.waitFor(/Ready to accept connections/, 30_000);
  }

  /** SHUTDOWN (the AOF is flushed and fsynced), then waits for the exit. */
  async shutdown(): Promise<void> {
    const proc = this.proc;
    if (!proc?.alive()) return;
    const cli = spawnProcess('redis-cli', ['-p', String(this.port), 'shutdown'], {});
    await cli.exited;
    await proc.exited;
  }

  /** SIGKILL: whatever the AOF had not fsynced yet is lost. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc?.alive()) return;
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
}

/**
 * A TCP proxy in front of Redis (workers connect through it): `cut()` drops every connection and
 * refuses new ones until `restore()`, like a network partition between the workers and Redis.
 */
export class TcpProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  port = 0;

  constructor(readonly targetPort: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      if (this.cutOff) {
        client.destroy();
        return;
      }
      const upstream = connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const a = server.address();
        this.port = typeof a === 'object' && a ? a.port : 0;
        resolve();
      });
    });
  }

  /** Drops every open connection and refuses new ones. */
  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
