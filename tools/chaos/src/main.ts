// `npm run chaos -- [--scenarios a,b] [--runs N] [--seed S] [--quick] [--json]`: fault injection
// with real processes. Per scenario and run: a private redis-server, a coordinator and workers,
// one LeNet-5 job, faults at seeded random moments, the final parameters compared with local
// training of the same spec. Exits 1 if any row is not green.
import { parseArgs } from 'node:util';
import { CHAOS_SPEC, CHAOS_SPEC_QUICK, referenceHash, runScenario, scenarios, type RunReport } from './index.ts';
import { formatTable } from './report.ts';

try {
  const { values } = parseArgs({
    options: { scenarios: { type: 'string' }, runs: { type: 'string', default: '1' }, seed: { type: 'string', default: '1' }, quick: { type: 'boolean' }, json: { type: 'boolean' } },
    strict: true,
  });
  const runs = Number(values.runs);
  const seed = Number(values.seed);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new RangeError(`--runs must be an integer in [1, 100], got ${JSON.stringify(values.runs)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`--seed must be an integer in [0, 2^32), got ${JSON.stringify(values.seed)}`);
  const all = scenarios(values.quick === true);
  const names = values.scenarios?.split(',').map((s) => s.trim()) ?? all.map((s) => s.name);
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) throw new RangeError(`--scenarios: unknown ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
  const spec = values.quick ? CHAOS_SPEC_QUICK : CHAOS_SPEC;
  const log = (line: string): void => void process.stderr.write(`${line}\n`);

  log(`chaos: reference (local training of the job spec)...`);
  const reference = await referenceHash(spec);
  log(`chaos: reference paramsSha256 ${reference}`);
  const rows: RunReport[] = [];
  for (let run = 0; run < runs; run++) {
    for (const [i, scenario] of all.entries()) {
      if (!names.includes(scenario.name)) continue;
      // Row seed: reproduce one row with the same --seed and --runs.
      const rowSeed = (seed + 1000 * run + 17 * i) >>> 0;
      log(`chaos: ${scenario.name} run ${run} (seed ${rowSeed}): ${scenario.description}`);
      const row = await runScenario(scenario, { spec, seed: rowSeed, run, log });
      log(`chaos: ${scenario.name} run ${run}: ${row.green ? 'GREEN' : `RED (${row.problems.join('; ')})`}`);
      rows.push(row);
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ seed, runs, quick: values.quick === true, spec, reference, green: rows.every((r) => r.green), rows }, null, 2)}\n`);
  else process.stdout.write(`${formatTable(rows)}\n`);
  process.exitCode = rows.every((r) => r.green) ? 0 : 1;
} catch (err) {
  process.stderr.write(`stride chaos: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
