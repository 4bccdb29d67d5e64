// metrics.jsonl with lines that are not records (null, other JSON values, a wrong type, a torn last
// line): reading and truncating skip them, report each with its line number, and never throw.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsLog, type MetricsRecord } from '../src/index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stride-metrics-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const step = (n: number): MetricsRecord =>
  ({ type: 'step', step: n, epoch: 0, epochProgress: n / 10, loss: 2, count: 8, lr: 0.1, imagesPerSec: 1, stepMs: 1, queueMs: 0, computeMs: 1, computeMsTotal: 1, publishMs: 0, reduceMs: 0, optimizerMs: 0, time: 't' }) as MetricsRecord;
const evalRecord: MetricsRecord = { type: 'eval', step: 2, epochProgress: 0.2, testLoss: 1, testAccuracy: 0.5, count: 10, evalMs: 1, time: 't' };

// Lines 1..12: three good records, the bad lines between them, a blank line and a torn last line.
const LINES = [
  JSON.stringify(step(0)),
  'null',
  JSON.stringify(step(1)),
  '42',
  '"step"',
  '[1,2]',
  '{"type":"other","step":1}',
  '{"type":"step","step":-1}',
  JSON.stringify(evalRecord),
  '',
  '{"type":"step","step":"3"}',
  '{"type":"step","st',
];
const EXPECTED_INVALID = [
  { line: 2, reason: 'expected a JSON object, got null' },
  { line: 4, reason: 'expected a JSON object, got number' },
  { line: 5, reason: 'expected a JSON object, got string' },
  { line: 6, reason: 'expected a JSON object, got an array' },
  { line: 7, reason: '"type" must be "step", "eval" or "skip", got "other"' },
  { line: 8, reason: '"step" must be an integer >= 0, got -1' },
  { line: 11, reason: '"step" must be an integer >= 0, got "3"' },
  { line: 12, reason: expect.stringMatching(/^not valid JSON \(/) },
];

async function writeLines(name: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, LINES.join('\n'));
  return file;
}

describe('MetricsLog with lines that are not records', () => {
  it('read skips them and reports each with its line number', async () => {
    const file = await writeLines('read.jsonl');
    const invalid: unknown[] = [];
    const records = await MetricsLog.read(file, { onInvalidLine: (e) => invalid.push(e) });
    expect(records).toEqual([step(0), step(1), evalRecord]);
    expect(invalid).toEqual(EXPECTED_INVALID);
    // Without a listener: the same records, no throw.
    expect(await MetricsLog.read(file)).toEqual(records);
  });

  it('truncateAfter drops them (reporting each) and keeps the records of the steps before the checkpoint', async () => {
    const file = await writeLines('truncate.jsonl');
    const invalid: unknown[] = [];
    await new MetricsLog(file).truncateAfter(2, { onInvalidLine: (e) => invalid.push(e) });
    expect(invalid).toEqual(EXPECTED_INVALID);
    expect(await readFile(file, 'utf8')).toBe(`${[step(0), step(1), evalRecord].map((r) => JSON.stringify(r)).join('\n')}\n`);

    // Records written after the truncation are read back after the kept ones.
    const log = new MetricsLog(file);
    await log.append(step(2));
    await log.close();
    expect((await MetricsLog.read(file)).map((r) => `${r.type}:${r.step}`)).toEqual(['step:0', 'step:1', 'eval:2', 'step:2']);

    // A file of nothing but bad lines truncates to empty.
    await writeFile(file, 'null\n7\n');
    await new MetricsLog(file).truncateAfter(5);
    expect(await readFile(file, 'utf8')).toBe('');
  });
});
