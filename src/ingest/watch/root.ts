// Which directory a watch holds. After `rm -r dir && mkdir dir` the path names another
// directory, which the old watcher never sees a write to. The watched one is kept
// open so that its inode number cannot go to the new one (ext4 reuses it at once;
// birth times would do, but without statx libuv reports ctime as the birth time). The
// price: a watched mount point is busy for umount while its watch runs.
// The same descriptor is where every walk into the folder starts (beneath.ts).
// A folder that comes back must come back where it was: its path swapped for a symlink
// to another directory (by whoever may write beside it) would have the watch read, and a
// drop remove, what lies there.
import { constants, type Stats } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { StevedoreError } from '../../errors.js';
import type { HeldRoot } from './beneath.js';

/** elsewhere: the path names a directory again, but by symlinks one in another place than the folder's. */
export type RootState = 'same' | 'gone' | 'replaced' | 'elsewhere';

export interface RootGuard {
  /** Opens the directory now at the path and remembers it. Throws SOURCE_UNSAFE when it is elsewhere than at the first pin. */
  pin(): Promise<void>;
  release(): void;
  check(): Promise<RootState>;
  /**
   * Runs `work` with the held directory. Its descriptor stays open until `work` is
   * done, even if release() comes meanwhile: a number closed under a running walk
   * could be reused by another open file, and the walk would go on in there.
   * Throws ENOENT when nothing is held (the folder is gone).
   */
  use<T>(work: (root: HeldRoot) => Promise<T>): Promise<T>;
}

interface Pinned extends HeldRoot {
  handle: FileHandle;
  users: number;
  released: boolean;
}

const idOf = (s: Stats) => `${s.dev}:${s.ino}`;

export function createRootGuard(root: string): RootGuard {
  let pinned: Pinned | undefined;
  let lastId: string | undefined;
  // The folder's real path when first held: where it must be when it comes back.
  let place: string | undefined;
  const closeIfIdle = (held: Pinned) => {
    if (held.released && held.users === 0) void held.handle.close().catch(() => undefined);
  };
  const release = () => {
    if (!pinned) return;
    pinned.released = true;
    closeIfIdle(pinned);
    pinned = undefined;
  };
  return {
    async pin() {
      release();
      const handle = await open(root, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK);
      try {
        const real = await realpath(`/proc/self/fd/${handle.fd}`);
        if (place !== undefined && real !== place) throw elsewhere(root, real, place);
        place = real;
        lastId = idOf(await handle.stat());
        pinned = { handle, fd: handle.fd, paths: [...new Set([root, real])], users: 0, released: false };
      } catch (error) {
        await handle.close();
        throw error;
      }
    },
    release,
    async check() {
      const now = await stat(root).then((s) => (s.isDirectory() ? idOf(s) : undefined), () => undefined);
      if (now === undefined) return 'gone';
      if (now === lastId) return 'same';
      const real = await realpath(root).catch(() => undefined);
      if (real === undefined) return 'gone';
      return place !== undefined && real !== place ? 'elsewhere' : 'replaced';
    },
    async use(work) {
      const held = pinned;
      if (!held) throw Object.assign(new Error(`${root} is not being watched now`), { code: 'ENOENT' });
      held.users += 1;
      try {
        return await work(held);
      } finally {
        held.users -= 1;
        closeIfIdle(held);
      }
    },
  };
}

const elsewhere = (root: string, real: string, place: string) =>
  new StevedoreError('SOURCE_UNSAFE', `${root} leads to ${real} now, not to ${place} where the watched directory was`, { details: { path: root, leads: real, was: place } });
