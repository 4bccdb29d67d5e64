// A small pool of node:worker_threads running one TypeScript module each, with a request/reply
// protocol. Used by the image-folder loader here, and (re-exported by @stride/engine) by the
// LocalExecutor and apps/worker. It lives in the lowest Node-side library so every layer can use it.
//
// Node cannot start a worker on a .ts file: threads start on a JavaScript bundle of the entry
// module (see thread-bundle.ts), or, where none can be built, on `thread-bootstrap.mjs`, which
// registers tsx and imports the entry module. The entry module calls `serveThread(handler)`.
//
// Requests and replies travel on a MessageChannel of their own per thread, next to a pair of
// counters in shared memory (requests posted, replies posted). Normally both sides receive them as
// events. A side that has nothing else to do may instead block on the counter and take the message
// at once with `receiveMessageOnPort`, without a trip through its event loop: a thread that
// `serveThread` asked to park after a reply, and a caller in `waitReply`. A round trip with an
// empty request measured 0.136 ms through both event loops, 0.074 ms sleeping on the counters and
// 0.006 ms spinning on them (2-core Zen 4 VM).
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, parentPort, receiveMessageOnPort, workerData, type MessagePort, type Transferable } from 'node:worker_threads';
import { threadBundle } from './thread-bundle.ts';

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
  /**
   * How long a side that waits blocked (`waitReply`, a thread parked by `serveThread`) spins on the
   * counter before it sleeps on it, as OpenMP's threads do between parallel regions. Only worth a
   * core each when the process has no more busy threads than cores. Default 0: sleep at once.
   */
  spinMs?: number;
  /**
   * Start threads on a bundle of `entry` (see thread-bundle.ts) rather than through tsx. Default
   * true; threads start through tsx anyway where no bundle can be built.
   */
  bundle?: boolean;
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
  /** This side of the thread's request/reply channel. */
  port: MessagePort;
  /** Int32 [REQUESTS, REPLIES]: messages posted on the channel each way, for the side that blocks. */
  signal: Int32Array;
  busy?: Pending<unknown>;
  /** Set once the thread has posted its ready message. */
  ready: boolean;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: { name: string; message: string; stack?: string } };

const BOOTSTRAP = new URL('./thread-bootstrap.mjs', import.meta.url);

/** Threads of a pool that may die before they are up, in a row, before the pool gives up. */
const MAX_START_FAILURES = 3;

/** Indices of the counters of a slot's `signal`. */
const REQUESTS = 0;
const REPLIES = 1;

/** Options that take a module to load in every thread (kept unless the module is tsx). */
const LOADERS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);
/** Other options a thread keeps (with a value: `--conditions`). */
const KEPT = new Set(['--conditions', '-C', '--enable-source-maps', '--no-warnings', '--no-deprecation', '--trace-warnings', '--trace-deprecation', '--throw-deprecation', '--trace-uncaught', '--pending-deprecation']);
const WITH_VALUE = new Set([...LOADERS, '--conditions', '-C']);

/**
 * The options a thread that starts on a bundle gets of the process's `args`: module loaders but
 * tsx (`--import tsx`, `--require=tsx/cjs`...) and the few options below that act per thread. A
 * Worker given its options explicitly refuses V8 and process options (those apply to every thread
 * anyway), so they are left out.
 */
export function bundleExecArgv(args: readonly string[]): string[] {
  const out: string[] = [];
  const isTsx = (v: string): boolean => v === 'tsx' || v.startsWith('tsx/');
  for (let i = 0; i < args.length; i++) {
    const eq = args[i].indexOf('=');
    const name = eq > 0 ? args[i].slice(0, eq) : args[i];
    let value: string | undefined;
    if (WITH_VALUE.has(name)) value = eq > 0 ? args[i].slice(eq + 1) : args[++i];
    if (!KEPT.has(name) && !LOADERS.has(name)) continue;
    if (LOADERS.has(name) && (value === undefined || isTsx(value))) continue;
    out.push(value === undefined ? name : `${name}=${value}`);
  }
  return out;
}

/** What a thread finds in its `workerData`. */
interface ThreadWorkerData {
  entry: string;
  data: unknown;
  index: number;
  port: MessagePort;
  signal: SharedArrayBuffer;
  spinMs: number;
}

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
 * request with a `ThreadError` and is replaced. Threads that die before they are up (an entry
 * module that cannot load) are replaced twice; the third time in a row the pool shuts down, and
 * every request fails with a `ThreadError` that says so.
 */
export class ThreadPool<Req, Res> {
  readonly size: number;
  private from: 'bundle' | 'tsx';
  private script: URL;
  /** Threads that died before they were up, in a row (see `MAX_START_FAILURES`). */
  private startFailures = 0;
  private readonly spinMs: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending<Res>[] = [];
  private nextId = 1;
  private closing?: Promise<void>;
  /** Why the pool stopped: closed, or its threads could not start. */
  private closedBy?: ThreadError;

  constructor(private readonly options: ThreadPoolOptions) {
    const size = options.size ?? availableParallelism();
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`ThreadPool: size must be an integer >= 1, got ${size}`);
    this.size = size;
    this.spinMs = options.spinMs ?? 0;
    if (!(this.spinMs >= 0)) throw new RangeError(`ThreadPool: spinMs must be >= 0, got ${options.spinMs}`);
    const bundle = (options.bundle ?? true) ? threadBundle(options.entry) : undefined;
    this.script = bundle ?? BOOTSTRAP;
    this.from = bundle ? 'bundle' : 'tsx';
    for (let i = 0; i < size; i++) this.slots.push(this.spawn(i));
    this.updateRefs();
  }

  /**
   * What the threads start on: a bundle of the entry, or tsx and the entry itself (also after a
   * thread failed to start from the bundle: see `spawn`).
   */
  get startsFrom(): 'bundle' | 'tsx' {
    return this.from;
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

  /**
   * Blocks the calling thread until thread `index` has answered the request it holds now (the
   * reply is then handled at once, as if it had arrived as an event) or until `timeoutMs` passed.
   * For a caller with nothing else to do meanwhile: its event loop stands still. Returns false on
   * timeout (the reply then arrives as an event, as usual); true when the request was answered or
   * the thread held none.
   */
  waitReply(index: number, timeoutMs: number): boolean {
    const slot = this.slots[index];
    if (!slot) throw new RangeError(`ThreadPool.waitReply: thread ${index} out of range [0, ${this.size})`);
    const pending = slot.busy;
    if (!pending) return true;
    const until = performance.now() + timeoutMs;
    while (slot.busy === pending && this.slots[index] === slot) {
      const received = nextMessage(slot.port, slot.signal, REPLIES, until, this.spinMs);
      if (!received) return false;
      this.onReply(slot, received.message as Reply);
    }
    return true;
  }

  /** Whether thread `index` is up (its entry module loaded, its ready message handled) and holds no request. */
  idle(index: number): boolean {
    const slot = this.slots[index];
    return slot !== undefined && slot.ready && !slot.busy;
  }

  /** Runs a copy of `request` on every thread; resolves with the replies in thread order. */
  broadcast(request: Req): Promise<Res[]> {
    return Promise.all(this.slots.map((slot) => this.enqueue(request, [], slot)));
  }

  /** Terminates every thread; pending and queued requests fail. Idempotent. */
  close(): Promise<void> {
    return this.shutDown(new ThreadError(`ThreadPool ${this.options.name ?? 'stride'}: closed`));
  }

  /** `close`, with `err` as the reason every pending, queued and later request fails with. */
  private shutDown(err: ThreadError): Promise<void> {
    this.closing ??= (async () => {
      this.closedBy = err;
      for (const p of this.queue.splice(0)) p.reject(err);
      await Promise.all(
        this.slots.map(async (slot) => {
          try {
            slot.busy?.reject(err);
            slot.busy = undefined;
            slot.port.close();
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
    if (this.closing) return Promise.reject(this.closedBy ?? new ThreadError(`ThreadPool ${this.options.name ?? 'stride'}: closed`));
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
      slot.port.postMessage({ id: p.id, request: p.request }, p.transfer as Transferable[]);
      // After the message: a thread that sees the count move finds the message on its port.
      Atomics.add(slot.signal, REQUESTS, 1);
      Atomics.notify(slot.signal, REQUESTS);
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
      if (slot.busy || waiting) {
        slot.worker.ref();
        slot.port.ref();
      } else {
        slot.worker.unref();
        slot.port.unref();
      }
    }
  }

  /** A reply of `slot`'s thread, received as an event or by `waitReply`. */
  private onReply(slot: Slot, msg: Reply): void {
    const p = slot.busy;
    if (!p || p.id !== msg.id) return;
    slot.busy = undefined;
    if (msg.ok) p.resolve(msg.value);
    else p.reject(rebuildError(msg.error, `${this.options.name ?? 'stride'}-${slot.index}`));
    this.pump();
  }

  private spawn(index: number): Slot {
    const name = `${this.options.name ?? 'stride'}-${index}`;
    const entry = typeof this.options.entry === 'string' ? this.options.entry : this.options.entry.href;
    const { port1, port2 } = new MessageChannel();
    const signal = new SharedArrayBuffer(8);
    const workerData: ThreadWorkerData = { entry, data: this.options.data, index, port: port2, signal, spinMs: this.spinMs };
    const worker = new Worker(this.script, {
      name,
      workerData,
      transferList: [port2],
      resourceLimits: this.options.resourceLimits,
      // A bundle needs no TypeScript loader: without the process's `--import tsx`, the thread
      // neither registers it nor sends its imports through tsx's hooks (~0.06 s less per thread).
      ...(this.from === 'bundle' ? { execArgv: bundleExecArgv(process.execArgv) } : {}),
    });
    const slot: Slot = { index, worker, port: port1, signal: new Int32Array(signal), ready: false };
    worker.on('message', (msg: { ready: true }) => {
      if (!('ready' in msg)) return;
      slot.ready = true;
      this.startFailures = 0;
      this.pump();
    });
    port1.on('message', (msg: Reply) => this.onReply(slot, msg));
    const onDeath = (err: Error | undefined): void => {
      if (this.slots[index]?.worker !== worker) return;
      const failure = new ThreadError(`thread ${name} died${err ? `: ${err.message}` : ''}`);
      const p = slot.busy;
      slot.busy = undefined;
      const wasUp = slot.ready;
      slot.ready = false;
      slot.port.close();
      if (this.closing) {
        p?.reject(failure);
        return;
      }
      if (!wasUp) {
        if (this.from === 'bundle') {
          // A bundle that builds but does not run here: threads start through tsx from now on.
          this.script = BOOTSTRAP;
          this.from = 'tsx';
          process.emitWarning(`ThreadPool ${this.options.name ?? 'stride'}: a thread did not start from its bundle (${failure.message}); starting threads through tsx`);
        } else if (++this.startFailures >= MAX_START_FAILURES) {
          // The entry module cannot load: every request fails with why, instead of threads
          // starting and dying for ever.
          p?.reject(failure);
          void this.shutDown(new ThreadError(`ThreadPool ${this.options.name ?? 'stride'}: its threads die before they are up (${MAX_START_FAILURES} in a row; last: ${failure.message})`));
          return;
        }
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
  /**
   * After each reply, wait up to this long for the next request blocked on the request counter,
   * instead of in the event loop, and answer it at once (see the file comment). For threads whose
   * requests come in quick succession, such as a training step's shards; the thread's event loop
   * stands still meanwhile. Default 0: return to the event loop at once.
   */
  parkMs?: number;
}

/**
 * Thread side of a ThreadPool: answers every request with `handler`. Call once at the top of the
 * entry module. Requests are handled one at a time, in arrival order.
 */
export function serveThread<Req, Res>(handler: (request: Req) => Res | Promise<Res>, options: ServeThreadOptions<Res> = {}): void {
  const { port, signal, spinMs = 0 } = (workerData ?? {}) as Partial<ThreadWorkerData>;
  if (!parentPort || !port || !signal) throw new ThreadError('serveThread: not running in a thread of a ThreadPool');
  const counts = new Int32Array(signal);
  const parkMs = options.parkMs ?? 0;
  type Request = { id: number; request: Req };
  /** Requests received as events and not started yet: parking would overtake them. */
  let queued = 0;

  const reply = (msg: Reply, transfer: Transferable[] = []): void => {
    port.postMessage(msg, transfer);
    Atomics.add(counts, REPLIES, 1);
    Atomics.notify(counts, REPLIES);
  };
  const fail = (id: number, e: unknown): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    reply({ id, ok: false, error: { name: err.name, message: err.message, stack: err.stack } });
  };
  const succeed = (id: number, value: Res): void => {
    let transfer: Transferable[];
    try {
      transfer = options.transferOf?.(value) ?? [];
    } catch (e) {
      fail(id, e);
      return;
    }
    reply({ id, ok: true, value }, transfer);
  };
  /** Answers `msg`: at once when the handler is synchronous, else once its promise settles. */
  const answer = (msg: Request): Promise<void> | undefined => {
    let value: Res | Promise<Res>;
    try {
      value = handler(msg.request);
    } catch (e) {
      fail(msg.id, e);
      return undefined;
    }
    if (!(value instanceof Promise)) {
      succeed(msg.id, value);
      return undefined;
    }
    return value.then(
      (v) => succeed(msg.id, v),
      (e: unknown) => fail(msg.id, e),
    );
  };
  /** Takes requests straight off the port for up to `parkMs` after the last one; returns a promise when a handler went asynchronous. */
  const park = (): Promise<void> | undefined => {
    for (;;) {
      const received = nextMessage(port, counts, REQUESTS, performance.now() + parkMs, spinMs);
      if (!received) return undefined;
      const pending = answer(received.message as Request);
      if (pending) return pending.then(() => (queued === 0 ? park() : undefined));
    }
  };

  let chain: Promise<void> = Promise.resolve();
  port.on('message', (msg: Request) => {
    queued++;
    chain = chain.then(async () => {
      queued--;
      await answer(msg);
      if (parkMs > 0 && queued === 0) await park();
    });
  });
  parentPort.postMessage({ ready: true });
}

/** The `data` option the pool was created with, inside a thread. */
export function threadData<T>(): T {
  return (workerData as { data: T } | null)?.data as T;
}

/** This thread's index in its pool (0 ≤ index < size), inside a thread; undefined elsewhere. */
export function threadIndex(): number | undefined {
  return (workerData as { index?: number } | null)?.index;
}

/**
 * The next message on `port`, taken at once, blocking until one is posted (`counts[at]` moves) or
 * until `until` (performance.now() ms); undefined then. Spins on the counter for up to `spinMs`
 * before it sleeps on it: spinning keeps the core awake, and waking a sleeping one costs tens of
 * microseconds here, more on a busy host.
 */
function nextMessage(port: MessagePort, counts: Int32Array, at: number, until: number, spinMs: number): { message: unknown } | undefined {
  for (;;) {
    // Read before looking at the port: a message posted after the look moves the counter past it.
    const seen = Atomics.load(counts, at);
    const received = receiveMessageOnPort(port);
    if (received) return received;
    const left = until - performance.now();
    if (left <= 0) return undefined;
    if (!spinWhile(counts, at, seen, Math.min(left, spinMs))) Atomics.wait(counts, at, seen, left);
  }
}

/** Counter reads between two looks at the clock while spinning (each look allocates its number). */
const SPIN_READS = 64;

/** Spins while `counts[at]` still holds `seen`, for up to `spinMs`; true once it changed. */
function spinWhile(counts: Int32Array, at: number, seen: number, spinMs: number): boolean {
  if (spinMs <= 0) return false;
  const end = performance.now() + spinMs;
  for (;;) {
    for (let i = 0; i < SPIN_READS; i++) if (Atomics.load(counts, at) !== seen) return true;
    if (performance.now() > end) return false;
  }
}
