// A target paused as "down" must be woken again when its pause ends, even when the
// clock moves on while the scheduler looks at it. The clock here ticks 1 ms on every
// read, the way a busy machine's does between two statements.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTestTarget } from '../helpers/targets.js';
import { harness, makeTask } from './harness.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('scheduler wake-up after a down target', () => {
  it('retries when the pause ends even if the clock ticks during the pass that finds it paused', async () => {
    let clock = 1_000_000;
    let ticking = false;
    vi.spyOn(Date, 'now').mockImplementation(() => (ticking ? clock++ : clock));
    vi.spyOn(Math, 'random').mockReturnValue(0); // first pause: exactly 500 ms

    const h = harness([]);
    const task = makeTask('/a', { target: 'later', attempts: 1 });
    h.scheduler.enqueue(task);
    await h.registry.waitFor(task.id, 50);
    expect(task).toMatchObject({ status: 'retrying', attempts: 0 });
    h.targets.set('later', createTestTarget({ name: 'later' }));

    // The wake-up timer (500 ms, real time) finds the target 1 ms before its pause ends;
    // any second read of the clock in that pass already sees the pause over.
    clock += 499;
    ticking = true;
    const settled = await h.registry.waitFor(task.id, 5000);
    expect(settled).toMatchObject({ status: 'done', attempts: 1 });
  });
});
