// Runs a set of child processes as one: each output line prefixed with the child's name, an
// unexpected exit reported (and, for a critical child, the whole set stopped), and an orderly
// stop on demand: SIGTERM in reverse start order, SIGKILL for whoever outlives the grace period.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';

export interface ChildSpec {
  /** Prefix of its log lines and name in messages: `coordinator`, `worker-1`... */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** When a critical child exits on its own, the supervisor stops everything. Default true. */
  critical?: boolean;
  /** A task expected to end (a build step): its exit is never reported as unexpected. Default false. */
  oneShot?: boolean;
  /**
   * Stop order: higher groups stop first, the children of one group together. Default: the start
   * index (so the last started stops first).
   */
  stopGroup?: number;
}

export interface SupervisorOptions {
  /** Where prefixed lines go. Default process.stdout / process.stderr. */
  stdout?: Writable;
  stderr?: Writable;
  /** Color the prefixes. Default: when stdout is a TTY and NO_COLOR is unset. */
  color?: boolean;
  /** Time a child gets between SIGTERM and SIGKILL, ms. Default 10 000. */
  graceMs?: number;
  /** Called once when a critical child died and the supervisor started stopping everything. */
  onCriticalExit?: (name: string, code: number | null, signal: NodeJS.Signals | null) => void;
}

/** Signals a child's whole process group (it leads one: spawned detached), else the child alone. */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      // Already gone.
    }
  }
}

const COLORS = [36, 33, 35, 32, 34, 91, 96, 93];

/** Formats one line with its child's name, padded so that the columns line up. */
export function prefixLine(name: string, width: number, line: string, color?: number): string {
  const label = name.padEnd(width);
  return color === undefined ? `${label} | ${line}\n` : `\x1b[${color}m${label} |\x1b[0m ${line}\n`;
}

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  done: boolean;
}

export class Supervisor {
  private readonly children: Running[] = [];
  private readonly out: Writable;
  private readonly err: Writable;
  private readonly color: boolean;
  private readonly graceMs: number;
  private readonly width: number;
  private stopping?: Promise<void>;

  constructor(
    /** Every name that will be started, for the column width. */
    names: readonly string[],
    private readonly options: SupervisorOptions = {},
  ) {
    this.out = options.stdout ?? process.stdout;
    this.err = options.stderr ?? process.stderr;
    this.color = options.color ?? (Boolean((process.stdout as { isTTY?: boolean }).isTTY) && process.env.NO_COLOR === undefined);
    this.graceMs = options.graceMs ?? 10_000;
    this.width = Math.max(5, ...names.map((n) => n.length));
  }

  /** True once `stop()` has been called (or a critical child died). */
  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  /** Prints a line of the supervisor itself. */
  log(line: string, toStderr = false): void {
    (toStderr ? this.err : this.out).write(prefixLine('start', this.width, line, this.color ? 1 : undefined));
  }

  /** Starts a child; resolves with its exit once it ends (never rejects). */
  start(spec: ChildSpec): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const color = this.color ? COLORS[this.children.length % COLORS.length] : undefined;
    // Each child gets its own process group, so a Ctrl-C at the terminal reaches only this
    // supervisor, which then stops the children once each and in order (Redis last).
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const [stream, sink] of [
      [child.stdout, this.out],
      [child.stderr, this.err],
    ] as const) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => sink.write(prefixLine(spec.name, this.width, line, color)));
    }
    const running: Running = {
      spec,
      child,
      done: false,
      exited: new Promise((resolve) => {
        child.on('error', (err) => {
          this.log(`${spec.name}: cannot start ${spec.command}: ${err.message}`, true);
          running.done = true;
          resolve({ code: null, signal: null });
        });
        child.on('exit', (code, signal) => {
          running.done = true;
          resolve({ code, signal });
        });
      }),
    };
    this.children.push(running);
    void running.exited.then(({ code, signal }) => {
      if (this.stopping || spec.oneShot) return;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (spec.critical === false) {
        this.log(`${spec.name} ${how} unexpectedly; the rest keeps running`, true);
        return;
      }
      this.log(`${spec.name} ${how} unexpectedly: stopping everything`, true);
      this.options.onCriticalExit?.(spec.name, code, signal);
      void this.stop();
    });
    return running.exited;
  }

  /** True while the named child runs. */
  isRunning(name: string): boolean {
    return this.children.some((c) => c.spec.name === name && !c.done);
  }

  /** Last resort when the supervisor itself exits: SIGKILL whatever still runs, synchronously. */
  killNow(): void {
    for (const c of this.children) if (!c.done) signalGroup(c.child, 'SIGKILL');
  }

  /**
   * Stops every child by descending `stopGroup` (the children of a group together), each with
   * SIGTERM, then SIGKILL after the grace period. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const group = (c: Running): number => c.spec.stopGroup ?? this.children.indexOf(c);
      const groups = [...new Set(this.children.map(group))].sort((a, b) => b - a);
      for (const g of groups) {
        await Promise.all(this.children.filter((c) => group(c) === g && !c.done).map((c) => this.stopOne(c)));
      }
    })();
    return this.stopping;
  }

  private async stopOne(c: Running): Promise<void> {
    signalGroup(c.child, 'SIGTERM');
    const killer = setTimeout(() => {
      if (!c.done) {
        this.log(`${c.spec.name} did not stop within ${this.graceMs} ms: killing it`, true);
        signalGroup(c.child, 'SIGKILL');
      }
    }, this.graceMs);
    await c.exited;
    clearTimeout(killer);
  }
}
