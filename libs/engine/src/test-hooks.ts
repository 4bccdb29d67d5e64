// Test-only crash points for the fault-injection harness (tools/chaos). Inert unless the
// environment variable STRIDE_TEST_CRASH_AT is set, which nobody does outside the harness.
//
//   STRIDE_TEST_CRASH_AT=<point>@<n>    SIGKILL this process at the n-th time it passes <point>
//
// Points: `shards-enqueued` (a step's shard jobs are in the queue, no result read yet),
// `checkpoint-write` (the checkpoint's temp file is written and fsynced, not yet renamed),
// `optimizer-step` (the optimizer has updated the parameters, nothing about the step is written).

let parsed: { point: string; n: number } | null | undefined;
let seen = 0;

function target(): { point: string; n: number } | null {
  if (parsed !== undefined) return parsed;
  const raw = typeof process !== 'undefined' ? process.env.STRIDE_TEST_CRASH_AT : undefined;
  const m = raw ? /^([a-z-]+)@(\d+)$/.exec(raw) : null;
  if (raw && !m) throw new RangeError(`STRIDE_TEST_CRASH_AT: expected <point>@<n>, got ${JSON.stringify(raw)}`);
  parsed = m ? { point: m[1], n: Number(m[2]) } : null;
  return parsed;
}

/** Passes `point`; kills this process there when STRIDE_TEST_CRASH_AT says so. */
export function crashPoint(point: 'shards-enqueued' | 'checkpoint-write' | 'optimizer-step'): void {
  const t = target();
  if (!t || t.point !== point) return;
  if (++seen < t.n) return;
  process.stderr.write(`${new Date().toISOString()} test crash point ${point}@${t.n}: SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
}
