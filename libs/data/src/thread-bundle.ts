// Threads start from a JavaScript bundle of their entry module.
//
// Node cannot start a thread on a .ts file. Through tsx (thread-bootstrap.mjs) a thread sends each
// of the ~80 modules its entry imports through the loader-hooks thread, to be resolved and
// transformed one by one: a LocalExecutor thread took ~0.6 s before it could take work (Intel Xeon
// VM, idle machine), and ~1 s with the training it joins competing for the cores. A bundle of the
// entry, with the workspace's own TypeScript inlined and npm packages left as imports, is ready in
// ~0.09 s.
//
// The bundle is built with esbuild (the compiler tsx uses) into node_modules/.cache/stride/threads/,
// next to a manifest of its input files' sizes and modification times; each pool start checks them
// (~1 ms) and builds again when one changed (~0.1 s). Where esbuild or the cache directory is not
// available (a read-only install), threads start through tsx as before.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root: this file is libs/data/src/thread-bundle.ts. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * Where bundles and their manifests go: beside the datasets' default cache, but never elsewhere
 * (not under `STRIDE_CACHE_DIR`): a bundle finds its npm imports from its own place in node_modules.
 */
export const THREAD_BUNDLE_DIR = join(ROOT, 'node_modules', '.cache', 'stride', 'threads');

interface Manifest {
  readonly esbuild: string;
  readonly entry: string;
  /** [path, size, mtimeMs] of every input file at the time of the build. */
  readonly inputs: readonly (readonly [string, number, number])[];
}

type EsbuildApi = Pick<typeof import('esbuild'), 'buildSync' | 'version'>;

/** esbuild's API, loaded only when a pool starts (never inside the threads the bundles run in). */
function esbuildApi(): EsbuildApi | undefined {
  try {
    return createRequire(import.meta.url)('esbuild') as EsbuildApi;
  } catch {
    return undefined;
  }
}

/** The workspace's packages (`@stride/*`) by name: their entry .ts files, inlined into bundles. */
function workspaceAliases(): Record<string, string> {
  const scope = join(ROOT, 'node_modules', '@stride');
  const alias: Record<string, string> = {};
  for (const name of readdirSync(scope)) {
    const dir = realpathSync(join(scope, name));
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports?: { '.'?: unknown } };
    const main = pkg.exports?.['.'];
    if (typeof main === 'string') alias[`@stride/${name}`] = join(dir, main);
  }
  return alias;
}

function fresh(manifestPath: string, bundlePath: string, esbuild: string, entry: string): boolean {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    statSync(bundlePath);
  } catch {
    return false;
  }
  if (manifest.esbuild !== esbuild || manifest.entry !== entry || !Array.isArray(manifest.inputs)) return false;
  for (const [path, size, mtimeMs] of manifest.inputs) {
    try {
      const s = statSync(path);
      if (s.size !== size || s.mtimeMs !== mtimeMs) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Writes `data` to `path` through a temporary file and a rename, so a reader never sees half of it. */
function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * A bundle of the TypeScript module `entry` for a thread to start on, built (again) when missing or
 * stale; undefined when `entry` is not a .ts file or no bundle can be had (the caller then starts
 * the thread through tsx).
 */
export function threadBundle(entry: URL | string): URL | undefined {
  const url = typeof entry === 'string' ? new URL(entry) : entry;
  if (url.protocol !== 'file:' || extname(url.pathname) !== '.ts') return undefined;
  const esbuild = esbuildApi();
  if (!esbuild) return undefined;
  const entryPath = fileURLToPath(url);
  const name = `${basename(entryPath, '.ts')}-${createHash('sha256').update(entryPath).digest('hex').slice(0, 12)}`;
  const bundlePath = join(THREAD_BUNDLE_DIR, `${name}.mjs`);
  const manifestPath = join(THREAD_BUNDLE_DIR, `${name}.json`);
  try {
    if (fresh(manifestPath, bundlePath, esbuild.version, entryPath)) return pathToFileURL(bundlePath);
    mkdirSync(THREAD_BUNDLE_DIR, { recursive: true });
    const started = Date.now();
    const result = esbuild.buildSync({
      absWorkingDir: ROOT,
      entryPoints: [entryPath],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // npm packages are imported as they are (found from the cache directory, inside node_modules).
      packages: 'external',
      alias: workspaceAliases(),
      outfile: bundlePath,
      sourcemap: 'linked',
      metafile: true,
      write: false,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs).map((p) => {
      const s = statSync(join(ROOT, p));
      return [join(ROOT, p), s.size, s.mtimeMs] as const;
    });
    for (const file of result.outputFiles) writeAtomic(file.path, file.contents);
    // A file changed since the build began may have been read before the change: without a
    // manifest, the next start builds again.
    if (inputs.every(([, , mtimeMs]) => mtimeMs < started)) {
      writeAtomic(manifestPath, JSON.stringify({ esbuild: esbuild.version, entry: entryPath, inputs } satisfies Manifest));
    }
    return pathToFileURL(bundlePath);
  } catch {
    return undefined;
  }
}
