// `node --import tsx apps/coordinator/src/main.ts [--concurrency N]`: a Stride coordinator process.
import { parseArgs } from 'node:util';
import { runCoordinator } from './run.ts';

const { values } = parseArgs({ options: { concurrency: { type: 'string' }, 'data-dir': { type: 'string' }, verbose: { type: 'boolean' } }, strict: true });
const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
try {
  await runCoordinator({ concurrency, dataDir: values['data-dir'], verbose: values.verbose });
} catch (err) {
  process.stderr.write(`stride coordinator: ${(err as Error).message}\n`);
  process.exit(1);
}
