// `node --import tsx apps/worker/src/main.ts [--threads N]`: a Stride worker process.
import { parseArgs } from 'node:util';
import { runWorker } from './run.ts';

const { values } = parseArgs({ options: { threads: { type: 'string' } }, strict: true });
const threads = values.threads === undefined ? undefined : Number(values.threads);
if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
  process.stderr.write(`--threads must be an integer >= 1, got ${values.threads}\n`);
  process.exit(2);
}
try {
  await runWorker({ threads });
} catch (err) {
  process.stderr.write(`stride worker: ${(err as Error).message}\n`);
  process.exit(1);
}
