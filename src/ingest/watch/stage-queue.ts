// Files that settled, waiting to be staged: at most `concurrency` staged at once, and
// none while `room()` says no (the watch keeps only so many files queued and not yet
// pushed). Each waits as its path and the few numbers of its version, not as its Stats
// and a promise chain: a 100,000-file tree waits here whole while its first pushes run.
// One file is staged by one stage() at a time, its versions in order: a version that
// comes while an older one waits replaces it (the older one would be found changed
// anyway), one that comes while an older one is being staged waits until it is done.
import type { Version } from './stage.js';

export interface StageQueueOptions {
  concurrency: number;
  stage(file: string, version: Version): Promise<void>;
  /** Whether another file may be staged now; call wake() once it may again. */
  room(): boolean;
  /** A stage() that threw: a bug, not a state of the file (stage() handles those). */
  failed(file: string, error: unknown): void;
}

export interface StageQueue {
  push(file: string, version: Version): void;
  /** Nothing starts until resume() (a scan lists the tree first). */
  pause(): void;
  resume(): void;
  /** There may be room again. */
  wake(): void;
  /** Files waiting or being staged. */
  readonly size: number;
  /** Drops what waits and resolves once the stages running are over. */
  close(): Promise<void>;
}

export function createStageQueue({ concurrency, stage, room, failed }: StageQueueOptions): StageQueue {
  const waiting = new Map<string, Version>();
  // Path being staged → the version that came meanwhile, if one did.
  const running = new Map<string, Version | undefined>();
  const stages = new Set<Promise<void>>();
  let paused = false;
  let closed = false;

  function pump(): void {
    while (!paused && !closed && running.size < concurrency && waiting.size > 0 && room()) {
      const [file, version] = waiting.entries().next().value as [string, Version];
      waiting.delete(file);
      running.set(file, undefined);
      const done: Promise<void> = stage(file, version)
        .catch((error: unknown) => failed(file, error))
        .finally(() => {
          stages.delete(done);
          const next = running.get(file);
          running.delete(file);
          if (next) push(file, next);
          pump();
        });
      stages.add(done);
    }
  }

  function push(file: string, version: Version): void {
    if (closed) return;
    if (running.has(file)) return void running.set(file, version);
    waiting.delete(file); // a newer version goes to the back, as if it came only now
    waiting.set(file, version);
    pump();
  }

  return {
    push,
    pause: () => void (paused = true),
    resume() {
      paused = false;
      pump();
    },
    wake: pump,
    get size() {
      return waiting.size + running.size;
    },
    async close() {
      closed = true;
      waiting.clear();
      await Promise.allSettled([...stages]);
    },
  };
}
