// When events were lost, the tree is scanned again. Two ways to lose them: our own
// look queue overflowing (looks.ts), and the kernel's inotify queue overflowing
// (fs.inotify.max_queued_events, 16,384 by default), which libuv drops without a word.
// The second cannot be seen, only suspected: a second with that many events in it.

/** One rescan at a time, of a directory's subtree; those asked for meanwhile run after it, once each. */
export interface Rescans {
  request(dir: string): void;
}

export function createRescans(rescan: (dir: string) => Promise<void>, failed: (error: unknown) => void): Rescans {
  const asked = new Set<string>();
  let running = false;
  const next = () => {
    const dir = asked.values().next().value;
    if (dir === undefined) return void (running = false);
    asked.delete(dir);
    running = true;
    rescan(dir).catch(failed).finally(next);
  };
  return {
    request(dir) {
      asked.add(dir);
      if (!running) next();
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
