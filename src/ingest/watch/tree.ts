// Watching a directory tree: with inotify by default (notify-tree.ts), or with
// chokidar 5's polling (`poll: true`), which network filesystems and machines without
// inotify need.
import type { Stats } from 'node:fs';
import { watch as chokidarWatch } from 'chokidar';
import { notifyTree } from './notify-tree.js';
import type { RootGuard } from './root.js';

export interface TreeEvents {
  add(file: string, stats: Stats): void;
  change(file: string, stats: Stats): void;
  unlink(file: string): void;
  unlinkDir(dir: string): void;
  error(error: Error): void;
  /** A directory's events came too fast: its watch pauses, then it is rescanned. */
  storm?(dir: string): void;
  /** A name that is not valid UTF-8 (node shows it with U+FFFD and cannot open it by that name). */
  unreadable?(file: string): void;
}

export interface TreeOptions {
  ignored(absolute: string): boolean;
  /** Report the files already there as `add` when the scan finds them. */
  initial: boolean;
  poll: boolean;
  /** The folder's held descriptor, where every walk into it starts. */
  use: RootGuard['use'];
}

export interface TreeWatcher {
  /** Settles once the initial scan is done. */
  readonly ready: Promise<void>;
  /** Files and directories known under the root now. */
  count(): number;
  close(): Promise<void>;
}

export function watchTree(root: string, options: TreeOptions, events: TreeEvents): TreeWatcher {
  return options.poll ? pollTree(root, options, events) : notifyTree(root, options, events);
}

function pollTree(root: string, { ignored, initial }: TreeOptions, events: TreeEvents): TreeWatcher {
  const watcher = chokidarWatch(root, { ignored, ignoreInitial: !initial, followSymlinks: false, alwaysStat: true, usePolling: true, interval: 500, binaryInterval: 500 });
  watcher
    .on('add', (file, stats) => stats && events.add(file, stats))
    .on('change', (file, stats) => stats && events.change(file, stats))
    .on('unlink', events.unlink)
    .on('unlinkDir', events.unlinkDir)
    .on('error', (error) => events.error(error as Error));
  return {
    ready: new Promise((resolve) => watcher.once('ready', () => resolve())),
    count: () => Object.values(watcher.getWatched()).reduce((sum, names) => sum + names.length, 0),
    close: () => watcher.close(),
  };
}
