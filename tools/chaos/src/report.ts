// The chaos summary: one row per (scenario, run) and one per fault kind, as text tables or JSON.
import type { FaultKind, RunReport } from './harness.ts';

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** "2× worker SIGKILL @4.1 s/step 3, @9.8 s/step 8": faults grouped by kind, with times and steps (recoveries left out). */
export function describeInjections(r: RunReport): string {
  const kinds = new Map<string, string[]>();
  for (const i of r.injections) {
    if (!i.fault) continue;
    const list = kinds.get(i.kind) ?? [];
    list.push(`@${secs(i.atMs).replace(' ', '')}/step ${i.step}`);
    kinds.set(i.kind, list);
  }
  return [...kinds].map(([kind, at]) => `${at.length}× ${kind} ${at.join(', ')}`).join('; ') || 'none';
}

function table(header: string[], body: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((b) => b[c].length)));
  const line = (cells: string[]): string => `| ${cells.map((x, c) => x.padEnd(widths[c])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
}

/** Per scenario and run: injected, what happened, finished, steps lost, identical parameters. */
export function formatTable(rows: RunReport[]): string {
  const header = ['scenario', 'kind', 'run', 'faults', 'injected', 'what happened', 'job', 'steps redone', 'skipped', 'time lost', 'paramsSha256', 'result'];
  const body = rows.map((r) => [
    r.scenario,
    r.kind,
    String(r.run),
    String(r.faults),
    describeInjections(r),
    r.notes.join('; ') || '-',
    r.finished ? `finished in ${secs(r.wallMs)}` : 'NOT FINISHED',
    String(r.stepsRecomputed),
    r.stepsSkipped.length ? r.stepsSkipped.join(',') : '-',
    secs(r.timeLostMs),
    r.paramsSha256 === undefined ? '-' : `${r.paramsSha256.slice(0, 12)}… ${r.hashMatches ? '= ref' : '≠ REF'}`,
    r.green ? 'GREEN' : 'RED',
  ]);
  const out = table(header, body);
  for (const r of rows) for (const p of r.problems) out.push(`  RED ${r.scenario} run ${r.run}: ${p}`);
  return out.join('\n');
}

export interface KindSummary {
  readonly kind: FaultKind;
  readonly scenarios: string[];
  readonly runs: number;
  readonly faults: number;
  readonly finished: number;
  readonly stepsRecomputed: number;
  readonly stepsSkipped: number;
  readonly identical: number;
  readonly green: boolean;
}

export function summarizeKinds(rows: RunReport[]): KindSummary[] {
  const kinds = [...new Set(rows.map((r) => r.kind))];
  return kinds.map((kind) => {
    const rs = rows.filter((r) => r.kind === kind);
    return {
      kind,
      scenarios: [...new Set(rs.map((r) => r.scenario))],
      runs: rs.length,
      faults: rs.reduce((n, r) => n + r.faults, 0),
      finished: rs.filter((r) => r.finished).length,
      stepsRecomputed: rs.reduce((n, r) => n + r.stepsRecomputed, 0),
      stepsSkipped: rs.reduce((n, r) => n + r.stepsSkipped.length, 0),
      identical: rs.filter((r) => r.hashMatches).length,
      green: rs.every((r) => r.green),
    };
  });
}

/** One row per fault kind: faults injected in all, jobs finished, steps lost, identical parameters. */
export function formatKindTable(rows: RunReport[]): string {
  const header = ['kind', 'scenarios', 'runs', 'faults injected', 'jobs finished', 'steps redone', 'steps skipped (planted)', 'identical parameters', 'result'];
  const body = summarizeKinds(rows).map((k) => [
    k.kind,
    k.scenarios.join(', '),
    String(k.runs),
    String(k.faults),
    `${k.finished}/${k.runs}`,
    String(k.stepsRecomputed),
    String(k.stepsSkipped),
    `${k.identical}/${k.runs}`,
    k.green ? 'GREEN' : 'RED',
  ]);
  return table(header, body).join('\n');
}
