// The fast subset of `npm run chaos`: a private redis-server, a coordinator and two workers as
// child processes; a worker SIGKILLed mid-shard (twice), then Redis shut down and restarted
// mid-step. Either way the job finishes with the bytes of local training.
import { describe, expect, it } from 'vitest';
import { CHAOS_SPEC_QUICK, referenceHash, runScenario, scenarios, type RunReport } from '../src/index.ts';

const byName = (name: string) => scenarios(true).find((s) => s.name === name)!;

function expectGreen(r: RunReport): void {
  expect(r.problems).toEqual([]);
  expect(r.finished).toBe(true);
  expect(r.paramsSha256).toBe(r.reference);
  expect(r.green).toBe(true);
}

describe('chaos harness', () => {
  it('worker SIGKILL mid-shard and a Redis restart mid-step: the job finishes with the reference bytes', { timeout: 150_000 }, async () => {
    const reference = await referenceHash(CHAOS_SPEC_QUICK);
    expect(reference).toMatch(/^[0-9a-f]{64}$/);

    const killed = await runScenario(byName('worker-kill'), { spec: CHAOS_SPEC_QUICK, seed: 5, run: 0, timeoutMs: 90_000 });
    expectGreen(killed);
    expect(killed.injections.map((i) => i.kind)).toEqual(['worker SIGKILL', 'worker SIGKILL']);
    expect(killed.faults).toBe(2);
    expect(killed.kind).toBe('workers');
    // Each kill happened with a shard in the victim's hands, at the seeded steps (in order).
    expect(killed.injections.every((i) => /holding \S+-s\d+-\d+/.test(i.detail ?? ''))).toBe(true);
    expect(killed.injections[0].step).toBeLessThanOrEqual(killed.injections[1].step);

    const restarted = await runScenario(byName('redis-restart'), { spec: CHAOS_SPEC_QUICK, seed: 5, run: 0, timeoutMs: 90_000 });
    expectGreen(restarted);
    expect(restarted.injections.map((i) => i.kind)).toEqual(['redis SHUTDOWN', 'redis started']);
    // The restart is a recovery, not a fault.
    expect(restarted.injections.map((i) => i.fault)).toEqual([true, false]);
    expect(restarted.faults).toBe(1);
  });
});
