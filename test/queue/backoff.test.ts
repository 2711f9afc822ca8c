import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/queue/backoff.js';

const policy = { initialDelay: 100, maxDelay: 5000 };

describe('backoffDelay', () => {
  it('doubles from initial_delay per attempt up to max_delay, with half of it fixed', () => {
    for (let attempt = 1; attempt <= 20; attempt += 1) {
      const full = Math.min(policy.maxDelay, policy.initialDelay * 2 ** (attempt - 1));
      expect(backoffDelay(attempt, policy, () => 0)).toBe(full / 2);
      expect(backoffDelay(attempt, policy, () => 1)).toBe(full);
      const mid = backoffDelay(attempt, policy, () => 0.37);
      expect(mid).toBeGreaterThanOrEqual(full / 2);
      expect(mid).toBeLessThanOrEqual(full);
    }
  });

  it('never exceeds max_delay, even for huge attempt numbers', () => {
    expect(backoffDelay(10_000, policy, () => 0.999999)).toBeLessThanOrEqual(policy.maxDelay);
    expect(backoffDelay(10_000, policy, () => 0)).toBe(policy.maxDelay / 2);
  });

  it('treats attempt 0 like the first attempt', () => {
    expect(backoffDelay(0, policy, () => 1)).toBe(policy.initialDelay);
  });

  it('spreads retries with the random source', () => {
    const values = [0.1, 0.5, 0.9].map((r) => backoffDelay(3, policy, () => r));
    expect(values).toEqual([220, 300, 380]);
  });
});
