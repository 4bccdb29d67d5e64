// A job's checkpoint directory: atomic writes, retention (last K plus the best), and loading the
// newest good checkpoint with fallback past corrupt ones.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, type Checkpoint } from './checkpoint-format.ts';
import { CheckpointError } from './errors.ts';
import { crashPoint } from './test-hooks.ts';

/** Options of a CheckpointStore. */
export interface CheckpointStoreOptions {
  /** How many of the newest checkpoints to keep (the best one is kept on top). Default 3. */
  keep?: number;
  /** Called for every non-fatal problem (a corrupt file skipped, a leftover temp file removed). Default: ignore. */
  onWarning?: (message: string) => void;
}

/** A checkpoint file on disk. */
export interface CheckpointEntry {
  readonly step: number;
  readonly file: string;
}

/** For warnings nobody listens to and clean-ups whose failure changes nothing. */
function ignore(): void {
  // Deliberately nothing.
}

const FILE_RE = /^step-(\d{8,})\.ckpt$/;
const TMP_RE = /^\.step-\d{8,}\.ckpt\.\d+\.tmp$/;

/** `step-00000937.ckpt`: zero-padded so that names sort by step. */
export function checkpointFileName(step: number): string {
  return `step-${String(step).padStart(8, '0')}.ckpt`;
}

/**
 * Writes `bytes` to `file` atomically: a temp file in the same directory, write, fsync, rename over
 * the target, fsync the directory. A crash leaves either the old file or the new one, never a mix.
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.tmp`);
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (file.endsWith('.ckpt')) crashPoint('checkpoint-write');
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

export class CheckpointStore {
  private readonly keep: number;
  private readonly warn: (message: string) => void;
  private ready?: Promise<void>;

  constructor(
    /** The directory holding this job's checkpoint files. */
    readonly dir: string,
    options: CheckpointStoreOptions = {},
  ) {
    const { keep, onWarning } = { keep: 3, onWarning: ignore, ...options };
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`CheckpointStore: keep must be an integer >= 1, got ${keep}`);
    this.keep = keep;
    this.warn = onWarning;
  }

  /** The checkpoint files, oldest first (corrupt ones included until a load sets them aside). */
  async list(): Promise<CheckpointEntry[]> {
    await this.init();
    const names = await readdir(this.dir);
    const out: CheckpointEntry[] = [];
    for (const name of names) {
      const m = FILE_RE.exec(name);
      if (m) out.push({ step: Number(m[1]), file: join(this.dir, name) });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /**
   * Writes the checkpoint atomically, then deletes all but the newest `keep` ones and the one at
   * `meta.best.step`. Returns the file written.
   */
  async write(ckpt: Checkpoint): Promise<CheckpointEntry> {
    await this.init();
    const file = join(this.dir, checkpointFileName(ckpt.meta.step));
    await writeFileAtomic(file, encodeCheckpoint(ckpt));
    await this.prune(ckpt.meta.best?.step);
    return { step: ckpt.meta.step, file };
  }

  /** Reads, verifies and decodes one file. Throws `CheckpointError` when it is corrupt or unreadable. */
  async read(file: string): Promise<Checkpoint> {
    let bytes: Uint8Array;
    try {
      const buf = await readFile(file);
      bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      throw new CheckpointError(`cannot read: ${(err as Error).message}`, file);
    }
    return decodeCheckpoint(bytes, file);
  }

  /**
   * The newest checkpoint that verifies, or undefined when there is none. A corrupt file is renamed
   * to `*.corrupt` (kept for inspection, never loaded again) with a warning, and the previous one is
   * tried.
   */
  async loadLatest(): Promise<Checkpoint | undefined> {
    const entries = await this.list();
    for (let i = entries.length - 1; i >= 0; i--) {
      const { file } = entries[i];
      try {
        return await this.read(file);
      } catch (err) {
        if (!(err instanceof CheckpointError)) throw err;
        this.warn(`checkpoint ${file} is corrupt, falling back to the previous one: ${err.message}`);
        // If even the rename fails, the next load meets the same file and skips it again.
        await rename(file, `${file}.corrupt`).catch(ignore);
      }
    }
    return undefined;
  }

  /** Deletes checkpoints beyond the newest `keep`, except the one at step `bestStep`. */
  private async prune(bestStep: number | undefined): Promise<void> {
    const entries = await this.list();
    const doomed = entries.slice(0, Math.max(0, entries.length - this.keep)).filter((e) => e.step !== bestStep);
    for (const e of doomed) await rm(e.file, { force: true });
  }

  /** Creates the directory and removes temp files a crash left behind, once. */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.dir, { recursive: true });
      for (const name of await readdir(this.dir)) {
        if (TMP_RE.test(name)) {
          this.warn(`removing ${name}, left behind by an interrupted checkpoint write`);
          await rm(join(this.dir, name), { force: true });
        }
      }
    })();
    return this.ready;
  }
}
