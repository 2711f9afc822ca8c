// When events were lost, the tree is scanned again. Two ways to lose them: our own
// look queue overflowing (looks.ts), and the kernel's inotify queue overflowing
// (fs.inotify.max_queued_events, 16,384 by default), which libuv drops without a word.
// The second cannot be seen, only suspected: a second with that many events in it.

/** One rescan at a time; one asked for while one runs happens after it. */
export interface Rescans {
  request(): void;
}

export function createRescans(rescan: () => Promise<void>, failed: (error: unknown) => void): Rescans {
  let running = false;
  let again = false;
  const run = () => {
    running = true;
    again = false;
    rescan()
      .catch(failed)
      .finally(() => {
        running = false;
        if (again) run();
      });
  };
  return {
    request() {
      if (running) again = true;
      else run();
    },
  };
}

export interface StormMeter {
  /** One event came. */
  count(): void;
  close(): void;
}

const WINDOW_MS = 1000;
// Half the kernel's default queue length in one second: the queue may have overflowed.
const STORM_EVENTS = 8192;

/** Calls `calmed()` once a second with fewer than STORM_EVENTS events follows a stormy one. */
export function createStormMeter(calmed: () => void, threshold = STORM_EVENTS): StormMeter {
  let events = 0;
  let stormy = false;
  let timer: NodeJS.Timeout | undefined;
  const endWindow = () => {
    timer = undefined;
    const busy = events >= threshold;
    events = 0;
    if (busy) {
      stormy = true;
      timer = setTimeout(endWindow, WINDOW_MS).unref();
    } else if (stormy) {
      stormy = false;
      calmed();
    }
  };
  return {
    count() {
      events += 1;
      timer ??= setTimeout(endWindow, WINDOW_MS).unref();
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
