// The inotify tree: one watch per directory (dir-watches.ts) and one lstat per path an
// event names, looks coalesced and bounded (looks.ts). chokidar 5 watches every file and
// re-reads a whole directory after changes in it (measured: ~120 lstat calls per file in
// a 1,000-file drop, and 740 MB for a 100,000-file tree), which is what drop folders and
// large mirrors cannot afford. Every directory is opened and listed through a walk from
// the folder's held descriptor that follows no symlink (beneath.ts): a writer swapping
// a directory for a symlink cannot turn the scan onto anything outside the folder.
import { lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../../errors.js';
import { DIR_FLAGS, fdPath, lstatBeneath, openBeneath } from './beneath.js';
import { createDirWatches } from './dir-watches.js';
import { createLookQueue } from './looks.js';
import { createRescans, createStormMeter } from './storm.js';
import type { TreeEvents, TreeOptions, TreeWatcher } from './tree.js';

// Looks at once: the thread pool has four threads, and uploads need them too.
const LOOKS = 8;
// Paths waiting to be looked at; past it, one rescan instead.
const MAX_WAITING = 10_000;
// lstats at once in a scan: enough to keep the thread pool busy, few enough to bound what waits.
const LSTATS = 64;
const NO_FOLLOW = { follow: false };
const LOSSY = '\uFFFD';

export function notifyTree(root: string, { ignored, initial, use, settling }: TreeOptions, events: TreeEvents): TreeWatcher {
  const files = new Set<string>();
  let closed = false;
  const relOf = (file: string) => path.relative(root, file).split(path.sep).join('/');
  const failed = (error: unknown) => events.error(error as Error);
  const rescans = createRescans(rescan, failed);
  const looks = createLookQueue({ concurrency: LOOKS, limit: MAX_WAITING, look: onEntry, overflow: () => rescans.request(root), failed });
  const storm = createStormMeter(() => rescans.request(root));
  const dirs = createDirWatches({
    event(dir, name, kind) {
      storm.count();
      const entryPath = name === undefined ? dir : path.join(dir, name);
      if (kind === 'change' && files.has(entryPath) && settling?.(entryPath)) return;
      looks.add(entryPath);
    },
    paused(dir, resume) {
      events.storm?.(dir);
      void resume.then(() => rescans.request(dir));
    },
    failed: (dir) => forgetDir(dir),
  });

  const watchDir = (dir: string, fd: number) => {
    try {
      dirs.watch(dir, fd);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') events.error(error as Error);
    }
  };

  // Opens `dir` by a walk that follows no symlink, then scans it through that descriptor.
  async function scan(dir: string, report: boolean, seen?: Set<string>): Promise<void> {
    const handle = await use((held) => openBeneath(held, relOf(dir), 'dir', NO_FOLLOW)).catch((error: unknown) => denied(dir, error));
    if (!handle) return;
    try {
      await scanOpen(dir, handle.fd, report, seen);
    } finally {
      await handle.close();
    }
  }

  // Watches `dir` first, then lists it, so that nothing created in between is missed.
  // With `seen` (a rescan), files known already are reported as changed. The lstats of
  // a directory's files run LSTATS at a time: one after the other, each waits out a trip
  // through the thread pool, and a 100,000-file tree took 2.5x as long as its walk.
  async function scanOpen(dir: string, fd: number, report: boolean, seen?: Set<string>): Promise<void> {
    watchDir(dir, fd);
    seen?.add(dir);
    const entries = await readdir(fdPath(fd), { withFileTypes: true }).catch(() => []);
    const subdirs: string[] = [];
    const toLook: { name: string; entryPath: string; known: boolean }[] = [];
    for (const entry of entries) {
      const entryPath = path.join(dir, entry.name);
      if (closed || ignored(entryPath)) continue;
      if (entry.isDirectory()) {
        subdirs.push(entry.name);
        continue;
      }
      seen?.add(entryPath);
      const known = files.has(entryPath);
      if (known && !seen) continue;
      files.add(entryPath);
      if (report || known) toLook.push({ name: entry.name, entryPath, known });
    }
    for (let i = 0; i < toLook.length && !closed; i += LSTATS) {
      await Promise.all(
        toLook.slice(i, i + LSTATS).map(async ({ name, entryPath, known }) => {
          const stats = await lstat(fdPath(fd, name)).catch(() => undefined);
          if (closed) return;
          if (!stats) gone(entryPath);
          else if (known) events.change(entryPath, stats);
          else events.add(entryPath, stats);
        }),
      );
    }
    for (const name of subdirs) {
      if (closed) return;
      // A directory swapped for a symlink since readdir fails here (ENOTDIR): its event follows.
      const child = await open(fdPath(fd, name), DIR_FLAGS).catch((error: unknown) => denied(path.join(dir, name), error));
      if (!child) continue;
      try {
        await scanOpen(path.join(dir, name), child.fd, report, seen);
      } finally {
        await child.close();
      }
    }
  }

  async function onEntry(entryPath: string): Promise<void> {
    if (closed || ignored(entryPath)) return;
    if (entryPath === root) return scan(root, true);
    const stats = await use((held) => lstatBeneath(held, relOf(entryPath), NO_FOLLOW)).catch(() => undefined);
    if (closed) return;
    if (!stats && entryPath.includes(LOSSY)) events.unreadable?.(entryPath);
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

  // After events were dropped (a paused watch, our look queue past MAX_WAITING, or the
  // kernel's queue in a storm, which libuv drops silently): what is under `dir` now is
  // reported, what went is gone.
  async function rescan(dir: string): Promise<void> {
    const seen = new Set<string>();
    await scan(dir, true, seen);
    if (closed) return;
    const prefix = dir === root ? '' : `${dir}${path.sep}`;
    const under = (known: string) => known === dir || known.startsWith(prefix);
    for (const known of dirs.dirs()) if (under(known) && !seen.has(known) && dirs.has(known)) forgetDir(known);
    for (const file of [...files]) {
      if (!under(file) || seen.has(file)) continue;
      files.delete(file);
      events.unlink(file);
    }
  }

  // A directory that may not be opened: said when it is for want of permission (a chmod
  // back is an event in its parent, and it is scanned then).
  function denied(dir: string, error: unknown): undefined {
    const code = errnoCode(error);
    if (code === 'EACCES' || code === 'EPERM') events.denied?.(dir);
    return undefined;
  }

  // A file listed but not there by that name: gone since, or named in bytes that are
  // not UTF-8 (node's name for it holds U+FFFD, and no file has that name).
  function gone(file: string): void {
    files.delete(file);
    if (file.includes(LOSSY)) events.unreadable?.(file);
  }

  // A directory that went (deleted, or moved out): everything known under it goes too.
  function forgetDir(dir: string): void {
    dirs.forget(dir);
    const prefix = `${dir}${path.sep}`;
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
      dirs.close();
    },
  };
}
