// Builds the compute threads' bundles ahead of time (see libs/data/src/thread-bundle.ts). Pools
// build them on their own when they can write to node_modules; the Docker image cannot once it
// runs (as `node`, over files owned by root), so it runs this while building.
//
//   node --import tsx tools/scripts/src/thread-bundles.ts
import { fileURLToPath } from 'node:url';
import { threadBundle } from '@stride/data';

/** Every module a ThreadPool starts threads on. */
export const THREAD_ENTRIES = ['libs/engine/src/local-thread.ts', 'libs/queue/src/shard-thread.ts', 'libs/data/src/image-decode-thread.ts'] as const;

const ROOT = new URL('../../../', import.meta.url);

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let failed = 0;
  for (const entry of THREAD_ENTRIES) {
    const bundle = threadBundle(new URL(entry, ROOT));
    if (bundle) process.stdout.write(`${entry} -> ${fileURLToPath(bundle)}\n`);
    else {
      failed++;
      process.stderr.write(`${entry}: no bundle (esbuild missing, the file does not build, or node_modules/.cache is not writable)\n`);
    }
  }
  process.exit(failed > 0 ? 1 : 0);
}
