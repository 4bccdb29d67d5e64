// `npm run chaos -- [--scenarios a,b] [--kinds workers,redis] [--runs N] [--seed S] [--quick] [--json]`:
// fault injection with real processes. Per scenario and run: a private redis-server, a coordinator
// and workers, one LeNet-5 job, faults at seeded random moments, the final parameters compared
// with local training of the same spec. Prints a row per run and a row per fault kind.
// `--soak SECONDS`: instead, one long run with random worker kills (see soak.ts).
// Exits 1 if any row is not green.
import { loadavg, uptime } from 'node:os';
import { parseArgs } from 'node:util';
import { CHAOS_SPEC, CHAOS_SPEC_QUICK, referenceHash, runScenario, scenarios, type RunReport } from './index.ts';
import { formatKindTable, formatTable, summarizeKinds } from './report.ts';
import { formatSoak, runSoak } from './soak.ts';

try {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string' },
      kinds: { type: 'string' },
      runs: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      soak: { type: 'string' },
      parallel: { type: 'string', default: '1' },
    },
    strict: true,
  });
  const runs = Number(values.runs);
  const parallel = Number(values.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 16) throw new RangeError(`--parallel must be an integer in [1, 16], got ${JSON.stringify(values.parallel)}`);
  const seed = Number(values.seed);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new RangeError(`--runs must be an integer in [1, 100], got ${JSON.stringify(values.runs)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`--seed must be an integer in [0, 2^32), got ${JSON.stringify(values.seed)}`);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const spec = values.quick ? CHAOS_SPEC_QUICK : CHAOS_SPEC;

  if (values.soak !== undefined) {
    const seconds = Number(values.soak);
    if (!Number.isInteger(seconds) || seconds < 10 || seconds > 86_400) throw new RangeError(`--soak must be a number of seconds in [10, 86400], got ${JSON.stringify(values.soak)}`);
    log(`chaos soak: ${seconds} s, seed ${seed}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (up ${Math.round(uptime())} s)`);
    const report = await runSoak(CHAOS_SPEC, seconds, { seed, log });
    if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(`${formatSoak(report)}\n`);
    process.exitCode = report.green ? 0 : 1;
  } else {
    const all = scenarios(values.quick === true);
    const kinds = values.kinds?.split(',').map((s) => s.trim());
    const names = values.scenarios?.split(',').map((s) => s.trim()) ?? all.filter((s) => !kinds || kinds.includes(s.kind)).map((s) => s.name);
    const unknown = names.filter((n) => !all.some((s) => s.name === n));
    if (unknown.length) throw new RangeError(`--scenarios: unknown ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);

    log(`chaos: reference (local training of the job spec)...`);
    const reference = await referenceHash(spec);
    log(`chaos: reference paramsSha256 ${reference}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    // Every (scenario, run) is independent (its own Redis, processes, prefix, data directory):
    // `--parallel N` runs N at once; rows keep the scenario order.
    const todo: { run: number; i: number }[] = [];
    for (let run = 0; run < runs; run++) for (const [i, scenario] of all.entries()) if (names.includes(scenario.name)) todo.push({ run, i });
    const rows: RunReport[] = new Array(todo.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < todo.length) {
        const k = next++;
        const { run, i } = todo[k];
        const scenario = all[i];
        // Row seed: reproduce one row with the same --seed and --runs.
        const rowSeed = (seed + 1000 * run + 17 * i) >>> 0;
        const tag = (line: string): void => log(parallel > 1 ? `[${scenario.name}] ${line}` : line);
        tag(`chaos: ${scenario.name} run ${run} (seed ${rowSeed}): ${scenario.description}`);
        const row = await runScenario(scenario, { spec, seed: rowSeed, run, log: tag });
        tag(`chaos: ${scenario.name} run ${run}: ${row.faults} faults, ${row.green ? 'GREEN' : `RED (${row.problems.join('; ')})`}`);
        rows[k] = row;
      }
    };
    await Promise.all(Array.from({ length: parallel }, lane));
    const load = loadavg();
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ seed, runs, quick: values.quick === true, spec, reference, loadAverage: load, green: rows.every((r) => r.green), kinds: summarizeKinds(rows), rows }, null, 2)}\n`);
    } else {
      process.stdout.write(`${formatTable(rows)}\n\n${formatKindTable(rows)}\n\nload average at the end: ${load.map((x) => x.toFixed(2)).join(' ')}\n`);
    }
    process.exitCode = rows.every((r) => r.green) ? 0 : 1;
  }
} catch (err) {
  process.stderr.write(`stride chaos: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
