// A push's time limit as a timer we hold. `AbortSignal.any([x, AbortSignal.timeout(ms)])`
// is not enough on Node 20: nothing holds the timeout signal strongly, a garbage
// collection can take it before it fires, and the push then runs on unbounded (seen as a
// push into a frozen daemon that waited 30 s for it to thaw, about 1 run in 17).

/** Runs `work` with a signal that aborts with a TimeoutError after `ms`, or with `parent`; the timer goes when it ends. */
export async function withDeadline<T>(parent: AbortSignal, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const timer = new AbortController();
  const clock = setTimeout(() => timer.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  try {
    return await work(AbortSignal.any([parent, timer.signal]));
  } finally {
    clearTimeout(clock);
  }
}
