// Entry point of the `stride` CLI (tools/cli/bin/stride.js imports this file).
import { main } from './program.ts';

process.exitCode = await main(process.argv);
