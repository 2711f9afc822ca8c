// Readiness: a file is ready once its size and mtime have held for `settleMs`. A write
// moves the mtime, so a file whose last write is older than settle is ready at once
// (a finished file renamed into place); one still being written is looked at again
// when settle has passed since its last write. A file whose size and mtime simply did
// not change across a whole settle period is ready too (an mtime in the future).
import type { Stats } from 'node:fs';

export interface Settler {
  /** Something happened to `file` (absolute path): watch it until it settles. */
  touch(file: string, stats?: Stats): void;
  forget(file: string): void;
  /** Whether `file` waits to be stat'ed again (it settles after its last write, whatever comes meanwhile). */
  has(file: string): boolean;
  readonly pending: number;
  close(): void;
}

interface Watched {
  /** Set while it waits to be looked at again; unset while it is being looked at. */
  timer?: NodeJS.Timeout;
  size: number;
  mtimeMs: number;
  since: number;
}

/**
 * What the watch sees of a file (never blocking, never leaving the folder): its stats,
 * undefined when it is not there (or may not be read), `blocked` when a directory on
 * its way is a symlink for now (a writer's swap; the tree forgets the file if it stays).
 */
export type StatOf = (file: string) => Promise<Stats | 'blocked' | undefined>;

export function createSettler(settleMs: number, statOf: StatOf, onReady: (file: string, stats: Stats) => void): Settler {
  const files = new Map<string, Watched>();
  const lookAgain = (file: string, watched: Watched, ms: number) => {
    watched.timer = setTimeout(() => {
      watched.timer = undefined;
      void check(file);
    }, ms);
  };

  const check = async (file: string, known?: Stats) => {
    const stats = known ?? (await statOf(file));
    const watched = files.get(file);
    if (!watched) return; // forgotten meanwhile
    if (stats === 'blocked') {
      lookAgain(file, watched, settleMs);
      return;
    }
    if (!stats?.isFile()) return void files.delete(file);
    const now = Date.now();
    const same = stats.size === watched.size && stats.mtimeMs === watched.mtimeMs;
    if (!same) Object.assign(watched, { size: stats.size, mtimeMs: stats.mtimeMs, since: now });
    const held = Math.max(now - stats.mtimeMs, same ? now - watched.since : 0);
    if (held >= settleMs) {
      files.delete(file);
      onReady(file, stats);
    } else {
      // Rounded up, not padded: a look that comes a hair too early (the loop's clock
      // lags) costs one more stat, while padding every file cost its latency 2 ms.
      lookAgain(file, watched, Math.ceil(settleMs - held));
    }
  };

  return {
    touch(file, stats) {
      clearTimeout(files.get(file)?.timer);
      files.set(file, { size: -1, mtimeMs: -1, since: Date.now() });
      void check(file, stats);
    },
    forget(file) {
      clearTimeout(files.get(file)?.timer);
      files.delete(file);
    },
    // Not while its stat runs: a write then could come after what the stat saw.
    has: (file) => files.get(file)?.timer !== undefined,
    get pending() {
      return files.size;
    },
    close() {
      files.forEach((watched) => clearTimeout(watched.timer));
      files.clear();
    },
  };
}
