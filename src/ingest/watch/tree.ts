// Watching a directory tree. With inotify, one non-recursive fs.watch per directory and
// one lstat per event: chokidar 5 watches every file and re-reads a whole directory
// after changes in it (measured: ~120 lstat calls per file in a 1,000-file drop, and
// 740 MB for a 100,000-file tree), which is what drop folders and large mirrors cannot
// afford. `poll: true` keeps chokidar, whose polling is what such setups need.
import { watch as fsWatch, type FSWatcher, type Stats } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { watch as chokidarWatch } from 'chokidar';
import { DIR_FLAGS, fdPath, lstatBeneath, openBeneath } from './beneath.js';
import { createLookQueue } from './looks.js';
import type { RootGuard } from './root.js';
import { createRescans, createStormMeter } from './storm.js';

export interface TreeEvents {
  add(file: string, stats: Stats): void;
  change(file: string, stats: Stats): void;
  unlink(file: string): void;
  unlinkDir(dir: string): void;
  error(error: Error): void;
}

export interface TreeOptions {
  ignored(absolute: string): boolean;
  /** Report the files already there as `add` when the scan finds them. */
  initial: boolean;
  poll: boolean;
  /** The folder's held descriptor, where every walk into it starts. */
  use: RootGuard['use'];
}

// Looks at once: the thread pool has four threads, and uploads need them too.
const LOOKS = 8;
// Paths waiting to be looked at; past it, one rescan instead.
const MAX_WAITING = 10_000;

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

function notifyTree(root: string, { ignored, initial, use }: TreeOptions, events: TreeEvents): TreeWatcher {
  const dirs = new Map<string, FSWatcher>();
  const files = new Set<string>();
  let closed = false;
  const relOf = (file: string) => path.relative(root, file).split(path.sep).join('/');
  const failed = (error: unknown) => events.error(error as Error);
  const looks = createLookQueue({ concurrency: LOOKS, limit: MAX_WAITING, look: onEntry, overflow: () => rescans.request(), failed });
  const rescans = createRescans(rescan, failed);
  const storm = createStormMeter(() => rescans.request());

  // The directory open as `fd` is watched by its inode, not its path: a directory swapped
  // for a symlink later cannot turn the watch onto what the link points at.
  const watchDir = (dir: string, fd: number) => {
    if (dirs.has(dir) || closed) return;
    try {
      const watcher = fsWatch(fdPath(fd), (_event, name) => {
        storm.count();
        looks.add(name ? path.join(dir, name.toString()) : dir);
      });
      watcher.on('error', () => forgetDir(dir));
      dirs.set(dir, watcher);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') events.error(error as Error);
    }
  };

  // Opens `dir` by a walk from the folder's descriptor that follows no symlink, then
  // scans it through that descriptor: the scan never leaves the folder.
  async function scan(dir: string, report: boolean, seen?: Set<string>): Promise<void> {
    const handle = await use((held) => openBeneath(held, relOf(dir), 'dir', { follow: false })).catch(() => undefined);
    if (!handle) return;
    try {
      await scanOpen(dir, handle.fd, report, seen);
    } finally {
      await handle.close();
    }
  }

  // Watches `dir` first, then lists it, so that nothing created in between is missed.
  async function scanOpen(dir: string, fd: number, report: boolean, seen?: Set<string>): Promise<void> {
    watchDir(dir, fd);
    seen?.add(dir);
    const entries = await readdir(fdPath(fd), { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const entryPath = path.join(dir, entry.name);
      if (closed || ignored(entryPath)) continue;
      if (entry.isDirectory()) {
        // A directory swapped for a symlink since readdir fails here (ENOTDIR): its event follows.
        const child = await open(fdPath(fd, entry.name), DIR_FLAGS).catch(() => undefined);
        if (!child) continue;
        try {
          await scanOpen(entryPath, child.fd, report, seen);
        } finally {
          await child.close();
        }
        continue;
      }
      seen?.add(entryPath);
      const known = files.has(entryPath);
      if (known && !seen) continue;
      files.add(entryPath);
      if (!report && !known) continue;
      const stats = await lstat(fdPath(fd, entry.name)).catch(() => undefined);
      if (!stats) files.delete(entryPath);
      else if (known) events.change(entryPath, stats);
      else events.add(entryPath, stats);
    }
  }

  async function onEntry(entryPath: string): Promise<void> {
    if (closed || ignored(entryPath)) return;
    const stats = entryPath === root ? undefined : await use((held) => lstatBeneath(held, relOf(entryPath), { follow: false })).catch(() => undefined);
    if (closed) return;
    if (entryPath === root) return scan(root, true);
    // A directory that is gone or is something else now (a symlink swapped in) is
    // forgotten with all it held; a file that became a directory, likewise.
    if (dirs.has(entryPath) && !stats?.isDirectory()) forgetDir(entryPath);
    if (files.has(entryPath) && (!stats || stats.isDirectory())) {
      files.delete(entryPath);
      events.unlink(entryPath);
    }
    if (!stats) return;
    if (stats.isDirectory()) {
      if (!dirs.has(entryPath)) await scan(entryPath, true); // made here, or moved in whole
    } else if (files.has(entryPath)) {
      events.change(entryPath, stats);
    } else {
      files.add(entryPath);
      events.add(entryPath, stats);
    }
  }

  // After events were dropped (ours past MAX_WAITING, or the kernel's queue in a storm,
  // which libuv drops silently): everything there now is reported, what went is gone.
  async function rescan(): Promise<void> {
    const seen = new Set<string>();
    await scan(root, true, seen);
    if (closed) return;
    for (const dir of [...dirs.keys()]) if (!seen.has(dir) && dirs.has(dir)) forgetDir(dir);
    for (const file of [...files]) {
      if (seen.has(file)) continue;
      files.delete(file);
      events.unlink(file);
    }
  }

  // A directory that went (deleted, or moved out): everything known under it goes too.
  function forgetDir(dir: string): void {
    const prefix = `${dir}${path.sep}`;
    for (const [watched, watcher] of dirs) {
      if (watched === dir || watched.startsWith(prefix)) {
        watcher.close();
        dirs.delete(watched);
      }
    }
    for (const file of files) {
      if (file.startsWith(prefix)) {
        files.delete(file);
        events.unlink(file);
      }
    }
    if (dir !== root) events.unlinkDir(dir);
  }

  return {
    ready: scan(root, initial),
    count: () => dirs.size + files.size,
    async close() {
      closed = true;
      looks.close();
      storm.close();
      dirs.forEach((watcher) => watcher.close());
      dirs.clear();
    },
  };
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
