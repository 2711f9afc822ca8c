// A push's time limit as a timer we hold. `AbortSignal.any([x, AbortSignal.timeout(ms)])`
// is not enough on Node 20: nothing holds the timeout signal strongly, a garbage
// collection can take it before it fires, and the push then runs on unbounded (seen as a
// push into a frozen daemon that waited 30 s for it to thaw, about 1 run in 17).

/** `signal` aborts with a TimeoutError after `ms`, or with `parent`; `clear()` when done. */
export function deadline(parent: AbortSignal, ms: number): { signal: AbortSignal; clear(): void } {
  const timer = new AbortController();
  const clock = setTimeout(() => timer.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  return { signal: AbortSignal.any([parent, timer.signal]), clear: () => clearTimeout(clock) };
}
