// The inotify watches of a tree's directories: one fs.watch per directory, made on a
// descriptor (/proc/self/fd/N) so that it follows the directory's inode, never a path a
// writer could swap for a symlink. Every event is a call into JavaScript, and a writer
// renaming a directory back and forth makes ~240,000 of them a second: a directory
// whose events come faster than BURST per WINDOW_MS has its watch closed for PAUSE_MS,
// after which its owner rescans it and watches it again. A storm then costs a few
// rescans a second instead of a callback per event.
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { fdPath } from './beneath.js';

export interface DirWatchEvents {
  /** `name` changed in `dir` (undefined: the directory itself); `change`: its content or attributes, not its name. */
  event(dir: string, name: string | undefined, kind: 'rename' | 'change'): void;
  /** `dir` was paused by a storm: rescan it (it is watched again by that scan). */
  paused(dir: string, resume: Promise<void>): void;
  /** The watch failed (the directory went). */
  failed(dir: string): void;
}

export interface DirWatches {
  /** Watches `dir`, open as `fd`, unless it is watched already or paused. Throws what fs.watch throws. */
  watch(dir: string, fd: number): void;
  has(dir: string): boolean;
  /** Stops watching `dir` and every directory under it; answers those that were known. */
  forget(dir: string): string[];
  dirs(): string[];
  readonly size: number;
  close(): void;
}

const WINDOW_MS = 100;
const BURST = 5000;
const PAUSE_MS = 500;

interface Entry {
  watcher?: FSWatcher;
  pause?: NodeJS.Timeout;
  windowStart: number;
  events: number;
}

export function createDirWatches(on: DirWatchEvents): DirWatches {
  const entries = new Map<string, Entry>();
  let closed = false;

  // Counts an event; true when the directory is storming.
  const storming = (entry: Entry) => {
    const now = performance.now();
    if (now - entry.windowStart > WINDOW_MS) Object.assign(entry, { windowStart: now, events: 0 });
    entry.events += 1;
    return entry.events > BURST;
  };

  const pause = (dir: string, entry: Entry) => {
    entry.watcher?.close();
    entry.watcher = undefined;
    const resume = new Promise<void>((resolve) => {
      entry.pause = setTimeout(() => {
        entry.pause = undefined;
        entry.events = 0;
        resolve();
      }, PAUSE_MS);
    });
    on.paused(dir, resume);
  };

  const stop = (entry: Entry) => {
    entry.watcher?.close();
    clearTimeout(entry.pause);
  };

  return {
    watch(dir, fd) {
      const known = entries.get(dir);
      if (closed || known?.watcher || known?.pause) return;
      const entry: Entry = known ?? { windowStart: 0, events: 0 };
      entry.watcher = fsWatch(fdPath(fd), (kind, name) => {
        if (storming(entry)) return pause(dir, entry);
        on.event(dir, name ? name.toString() : undefined, kind);
      });
      entry.watcher.on('error', () => on.failed(dir));
      entries.set(dir, entry);
    },
    has: (dir) => entries.has(dir),
    forget(dir) {
      const prefix = `${dir}${path.sep}`;
      const gone = [...entries.keys()].filter((known) => known === dir || known.startsWith(prefix));
      for (const known of gone) {
        stop(entries.get(known) as Entry);
        entries.delete(known);
      }
      return gone;
    },
    dirs: () => [...entries.keys()],
    get size() {
      return entries.size;
    },
    close() {
      closed = true;
      entries.forEach(stop);
      entries.clear();
    },
  };
}
