import { describe, expect, it } from 'vitest';
import { progressLine } from '../../src/commands/progress.js';

describe('progressLine', () => {
  it('shows a bar, percent and rate while bytes are reported', () => {
    expect(progressLine({ total: 10e6, bytes: 2.5e6, elapsedMs: 500, attempt: 1 })).toBe('[#####               ]  25% of 10.0 MB, 5.0 MB/s');
    expect(progressLine({ total: 10e6, bytes: 10e6, elapsedMs: 0, attempt: 3 })).toBe('[####################] 100% of 10.0 MB, 0.0 MB/s (attempt 3)');
  });

  it('shows the size and the time elapsed where nothing is reported', () => {
    expect(progressLine({ total: 9437184, bytes: undefined, elapsedMs: 1260, attempt: 1 })).toBe('pushing 9.4 MB… 1.3 s');
    expect(progressLine({ total: 9437184, bytes: undefined, elapsedMs: 0, attempt: 2 })).toBe('pushing 9.4 MB… 0.0 s (attempt 2)');
  });
});
