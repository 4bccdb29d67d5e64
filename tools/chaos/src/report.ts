// The chaos summary: one row per (scenario, run), as a text table or JSON.
import type { RunReport } from './harness.ts';

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** "2× worker SIGKILL @4.1 s/step 3, @9.8 s/step 8": injections grouped by kind, with times and steps. */
export function describeInjections(r: RunReport): string {
  const kinds = new Map<string, string[]>();
  for (const i of r.injections) {
    const list = kinds.get(i.kind) ?? [];
    list.push(`@${secs(i.atMs).replace(' ', '')}/step ${i.step}`);
    kinds.set(i.kind, list);
  }
  return [...kinds].map(([kind, at]) => `${at.length}× ${kind} ${at.join(', ')}`).join('; ') || 'none';
}

export function formatTable(rows: RunReport[]): string {
  const header = ['scenario', 'run', 'seed', 'injected', 'job', 'steps redone', 'resumed from', 'median step', 'time lost', 'coord warn', 'paramsSha256', 'result'];
  const body = rows.map((r) => [
    r.scenario,
    String(r.run),
    String(r.seed),
    describeInjections(r),
    r.finished ? `finished in ${secs(r.wallMs)}` : 'NOT FINISHED',
    String(r.stepsRecomputed),
    r.resumedFrom === undefined ? '-' : String(r.resumedFrom),
    `${r.medianStepMs} ms`,
    secs(r.timeLostMs),
    String(r.coordinatorWarnings),
    r.paramsSha256 === undefined ? '-' : `${r.paramsSha256.slice(0, 12)}… ${r.hashMatches ? '= ref' : '≠ REF'}`,
    r.green ? 'GREEN' : 'RED',
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((b) => b[c].length)));
  const line = (cells: string[]): string => `| ${cells.map((x, c) => x.padEnd(widths[c])).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
  for (const r of rows) for (const p of r.problems) out.push(`  RED ${r.scenario} run ${r.run}: ${p}`);
  return out.join('\n');
}
