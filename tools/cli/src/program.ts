// The `stride` program: each command lives in ./commands/<name>.ts and is registered here.
// main.ts runs it; tests drive `main(argv)` directly.
import { Command, CommanderError } from 'commander';
import { registerCheckpoint } from './commands/checkpoint.ts';
import { registerCoordinator } from './commands/coordinator.ts';
import { registerSubmit } from './commands/submit.ts';
import { registerTrain } from './commands/train.ts';
import { registerWorker } from './commands/worker.ts';
import { EXIT_OK, exitCodeOf } from './errors.ts';

/** Builds the program with every command registered. */
export function buildProgram(): Command {
  const program = new Command('stride')
    .description('Stride: distributed training of convolutional neural networks over BullMQ')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerTrain(program);
  registerCheckpoint(program);
  registerSubmit(program);
  registerCoordinator(program);
  registerWorker(program);
  // Every subcommand reports bad flags by throwing (exit code 2), not by exiting on its own.
  for (const cmd of program.commands) {
    cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
    for (const sub of cmd.commands) sub.exitOverride().showHelpAfterError('(run with --help for usage)');
  }
  return program;
}

/** Runs the CLI on `argv` (process.argv style) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return EXIT_OK;
  } catch (err) {
    const code = exitCodeOf(err);
    // Commander already printed its own messages (and help/version output, code 0).
    if (!(err instanceof CommanderError)) process.stderr.write(`stride: ${(err as Error).message ?? String(err)}\n`);
    return code;
  }
}
