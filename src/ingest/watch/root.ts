// Which directory a watch holds. After `rm -r dir && mkdir dir` the path names another
// directory, which the old watcher never sees a write to. The watched one is kept
// open so that its inode number cannot go to the new one (ext4 reuses it at once;
// birth times would do, but without statx libuv reports ctime as the birth time). The
// price: a watched mount point is busy for umount while its watch runs.
import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

export type RootState = 'same' | 'gone' | 'replaced';

export interface RootGuard {
  /** Opens the directory now at the path and remembers it. */
  pin(): Promise<void>;
  release(): void;
  check(): Promise<RootState>;
}

const idOf = (s: Stats) => `${s.dev}:${s.ino}`;

export function createRootGuard(root: string): RootGuard {
  let handle: FileHandle | undefined;
  let pinned: string | undefined;
  const release = () => {
    void handle?.close().catch(() => undefined);
    handle = undefined;
  };
  return {
    async pin() {
      release();
      handle = await open(root, constants.O_RDONLY | constants.O_DIRECTORY);
      pinned = idOf(await handle.stat());
    },
    release,
    async check() {
      const now = await stat(root).then((s) => (s.isDirectory() ? idOf(s) : undefined), () => undefined);
      if (now === undefined) return 'gone';
      return now === pinned ? 'same' : 'replaced';
    },
  };
}
