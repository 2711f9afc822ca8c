// Looking at paths that events named, coalesced: a folder's writer can make events far
// faster than the agent can look (a directory renamed back and forth 90,000 times a
// second), and one look per event took the agent to 2.4 GB. Here a path is looked at
// by at most one look at a time (events meanwhile mean one more look after it), at
// most `concurrency` looks run at once, and at most `limit` paths wait: past that they
// are all dropped for one `overflow()` (a rescan), as the kernel does with inotify.
export interface LookQueue {
  add(path: string): void;
  /** Paths waiting or being looked at. */
  readonly size: number;
  close(): void;
}

export interface LookOptions {
  concurrency: number;
  limit: number;
  look(path: string): Promise<void>;
  overflow(): void;
  /** A look that failed: a bug, not a state of the folder (looks handle those). */
  failed(error: unknown): void;
}

export function createLookQueue({ concurrency, limit, look, overflow, failed }: LookOptions): LookQueue {
  const waiting = new Set<string>();
  // Path → whether an event came while it was being looked at.
  const running = new Map<string, boolean>();
  let closed = false;

  const finish = (path: string) => {
    const again = running.get(path) === true;
    running.delete(path);
    if (again) add(path);
    pump();
  };

  function pump(): void {
    while (!closed && running.size < concurrency && waiting.size > 0) {
      const path = waiting.values().next().value as string;
      waiting.delete(path);
      running.set(path, false);
      look(path).catch(failed).finally(() => finish(path));
    }
  }

  function add(path: string): void {
    if (closed) return;
    if (running.has(path)) return void running.set(path, true);
    if (waiting.has(path)) return;
    if (waiting.size >= limit) {
      waiting.clear();
      return overflow();
    }
    waiting.add(path);
    pump();
  }

  return {
    add,
    get size() {
      return waiting.size + running.size;
    },
    close() {
      closed = true;
      waiting.clear();
    },
  };
}
