// Exponential backoff with "equal jitter": half the delay is fixed, half random, so
// retries of a burst spread out but never come back sooner than half the schedule.
import type { RetryPolicy } from '../task.js';

export function backoffDelay(attempt: number, { initialDelay, maxDelay }: Omit<RetryPolicy, 'attempts'>, random = Math.random): number {
  const exponential = Math.min(maxDelay, initialDelay * 2 ** Math.max(0, attempt - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}
