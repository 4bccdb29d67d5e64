// A small pool of node:worker_threads running one TypeScript module each, with a request/reply
// protocol. Used by the image-folder loader here, and (re-exported by @stride/engine) by the
// LocalExecutor and apps/worker. It lives in the lowest Node-side library so every layer can use it.
//
// Node cannot start a worker on a .ts file, so every thread starts on `thread-bootstrap.mjs`,
// which registers tsx and imports the entry module; the entry module calls `serveThread(handler)`.
import { availableParallelism } from 'node:os';
import { Worker, parentPort, workerData, type Transferable } from 'node:worker_threads';

/** Options of a ThreadPool. */
export interface ThreadPoolOptions {
  /** URL (or file URL string) of the .ts/.js module each thread imports; it must call `serveThread`. */
  entry: URL | string;
  /** Number of threads. Default: `os.availableParallelism()`. */
  size?: number;
  /** Passed to every thread, readable there through `threadData()`. Default: undefined. */
  data?: unknown;
  /** Thread name prefix for debugging. Default: `'stride'`. */
  name?: string;
  /** Extra `resourceLimits` for each thread. Default: none. */
  resourceLimits?: import('node:worker_threads').ResourceLimits;
}

interface Pending<Res> {
  readonly id: number;
  readonly request: unknown;
  readonly transfer: readonly Transferable[];
  readonly resolve: (value: Res) => void;
  readonly reject: (err: Error) => void;
  readonly target?: Slot;
}

interface Slot {
  readonly index: number;
  worker: Worker;
  busy?: Pending<unknown>;
  /** Set once the thread has posted its ready message. */
  ready: boolean;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: { name: string; message: string; stack?: string } };

const BOOTSTRAP = new URL('./thread-bootstrap.mjs', import.meta.url);

/**
 * A worker thread died (`remoteName` undefined) or a request failed inside one (`remoteName` is the
 * name of the error thrown there, e.g. `StaleParamsError`).
 */
export class ThreadError extends Error {
  override readonly name = 'ThreadError';
  constructor(
    message: string,
    readonly remoteName?: string,
  ) {
    super(message);
  }
}

/**
 * A fixed-size pool of worker threads. `run` sends a request to the next idle thread (FIFO);
 * `runOn` to a given thread; `broadcast` to every thread. A thread that dies fails its in-flight
 * request with a `ThreadError` and is replaced.
 */
export class ThreadPool<Req, Res> {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending<Res>[] = [];
  private nextId = 1;
  private closing?: Promise<void>;

  constructor(private readonly options: ThreadPoolOptions) {
    const size = options.size ?? availableParallelism();
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`ThreadPool: size must be an integer >= 1, got ${size}`);
    this.size = size;
    for (let i = 0; i < size; i++) this.slots.push(this.spawn(i));
    this.updateRefs();
  }

  /** Runs `request` on the next idle thread. `transfer` lists buffers to move instead of copy. */
  run(request: Req, transfer: readonly Transferable[] = []): Promise<Res> {
    return this.enqueue(request, transfer, undefined);
  }

  /** Runs `request` on thread `index` (0 ≤ index < size), after what that thread already has queued. */
  runOn(index: number, request: Req, transfer: readonly Transferable[] = []): Promise<Res> {
    const slot = this.slots[index];
    if (!slot) throw new RangeError(`ThreadPool.runOn: thread ${index} out of range [0, ${this.size})`);
    return this.enqueue(request, transfer, slot);
  }

  /** Runs a copy of `request` on every thread; resolves with the replies in thread order. */
  broadcast(request: Req): Promise<Res[]> {
    return Promise.all(this.slots.map((slot) => this.enqueue(request, [], slot)));
  }

  /** Terminates every thread; pending and queued requests fail. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const err = new ThreadError(`ThreadPool ${this.options.name ?? 'stride'}: closed`);
      for (const p of this.queue.splice(0)) p.reject(err);
      await Promise.all(
        this.slots.map(async (slot) => {
          try {
            slot.busy?.reject(err);
            slot.busy = undefined;
            await slot.worker.terminate();
          } catch {
            // A thread that is already gone has nothing left to release.
          }
        }),
      );
    })();
    return this.closing;
  }

  private enqueue(request: unknown, transfer: readonly Transferable[], target: Slot | undefined): Promise<Res> {
    if (this.closing) return Promise.reject(new ThreadError(`ThreadPool ${this.options.name ?? 'stride'}: closed`));
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, request, transfer, resolve, reject, target });
      this.pump();
    });
  }

  /** Hands queued requests to idle, ready threads; a targeted request waits for its own thread. */
  private pump(): void {
    for (let q = 0; q < this.queue.length; ) {
      const p = this.queue[q];
      const slot = p.target ?? this.slots.find((s) => s.ready && !s.busy);
      if (!slot || !slot.ready || slot.busy) {
        q++;
        continue;
      }
      this.queue.splice(q, 1);
      slot.busy = p as Pending<unknown>;
      slot.worker.postMessage({ id: p.id, request: p.request }, p.transfer as Transferable[]);
    }
    this.updateRefs();
  }

  /**
   * Idle threads must not keep the process alive, busy ones must (a pending promise alone does not
   * hold the event loop): a thread is referenced while it computes or while requests wait for it.
   */
  private updateRefs(): void {
    const waiting = this.queue.length > 0;
    for (const slot of this.slots) {
      if (slot.busy || waiting) slot.worker.ref();
      else slot.worker.unref();
    }
  }

  private spawn(index: number): Slot {
    const name = `${this.options.name ?? 'stride'}-${index}`;
    const entry = typeof this.options.entry === 'string' ? this.options.entry : this.options.entry.href;
    const worker = new Worker(BOOTSTRAP, {
      name,
      workerData: { entry, data: this.options.data, index },
      resourceLimits: this.options.resourceLimits,
    });
    const slot: Slot = { index, worker, ready: false };
    worker.on('message', (msg: Reply | { ready: true }) => {
      if ('ready' in msg) {
        slot.ready = true;
        this.pump();
        return;
      }
      const p = slot.busy;
      if (!p || p.id !== msg.id) return;
      slot.busy = undefined;
      if (msg.ok) p.resolve(msg.value);
      else p.reject(rebuildError(msg.error, name));
      this.pump();
    });
    const onDeath = (err: Error | undefined): void => {
      if (this.slots[index]?.worker !== worker) return;
      const failure = new ThreadError(`thread ${name} died${err ? `: ${err.message}` : ''}`);
      const p = slot.busy;
      slot.busy = undefined;
      slot.ready = false;
      if (this.closing) {
        p?.reject(failure);
        return;
      }
      // Replace the thread before failing the request so a retry finds a thread on its way up.
      this.slots[index] = this.spawn(index);
      // Requests targeted at the dead thread move to its replacement.
      for (let i = 0; i < this.queue.length; i++) {
        if (this.queue[i].target === slot) this.queue[i] = { ...this.queue[i], target: this.slots[index] };
      }
      this.pump();
      p?.reject(failure);
    };
    worker.on('error', (err) => onDeath(err));
    worker.on('exit', (code) => onDeath(code === 0 ? undefined : new Error(`exit code ${code}`)));
    return slot;
  }
}

function rebuildError(e: { name: string; message: string; stack?: string }, thread: string): Error {
  const err = new ThreadError(`${e.name} in thread ${thread}: ${e.message}`, e.name);
  if (e.stack) err.stack = `${err.name}: ${err.message}\n--- thread stack ---\n${e.stack}`;
  return err;
}

/** Options of `serveThread`. */
export interface ServeThreadOptions<Res> {
  /** Buffers of the reply to transfer rather than copy (e.g. a gradient's ArrayBuffer). */
  transferOf?: (value: Res) => Transferable[];
}

/**
 * Thread side of a ThreadPool: answers every request with `handler`. Call once at the top of the
 * entry module. Requests are handled one at a time, in arrival order.
 */
export function serveThread<Req, Res>(handler: (request: Req) => Res | Promise<Res>, options: ServeThreadOptions<Res> = {}): void {
  const port = parentPort;
  if (!port) throw new ThreadError('serveThread: not running in a worker thread');
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (msg: { id: number; request: Req }) => {
    chain = chain.then(async () => {
      try {
        const value = await handler(msg.request);
        port.postMessage({ id: msg.id, ok: true, value } satisfies Reply, options.transferOf?.(value) ?? []);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        port.postMessage({ id: msg.id, ok: false, error: { name: err.name, message: err.message, stack: err.stack } } satisfies Reply);
      }
    });
  });
  port.postMessage({ ready: true });
}

/** The `data` option the pool was created with, inside a thread. */
export function threadData<T>(): T {
  return (workerData as { data: T } | null)?.data as T;
}

/** This thread's index in its pool (0 ≤ index < size), inside a thread; undefined elsewhere. */
export function threadIndex(): number | undefined {
  return (workerData as { index?: number } | null)?.index;
}
