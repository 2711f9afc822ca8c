// A drop folder's file after its push succeeded: removed, or moved under after_push
// keeping its relative path. Only the inode that was pushed, and only if it is still the
// version that was pushed: a file written again since stays for its newer task. Its
// parent is reached by a walk that follows no symlink (beneath.ts), and the removal or
// rename names the entry inside that held directory: a parent swapped for a symlink
// after the push cannot turn it onto a file outside the folder.
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { StevedoreError, errnoCode, isStevedoreError } from '../../errors.js';
import { copyHandle } from '../../one-buffer.js';
import type { TaskOrigin } from '../../task.js';
import { DIR_FLAGS, fdPath, inParent } from './beneath.js';
import type { RootGuard } from './root.js';

export interface AfterDropArgs {
  guard: RootGuard;
  afterPush: string | null;
  origin: TaskOrigin;
  log: Logger;
}

const NO_FOLLOW = { follow: false };

/** done (removed or moved), kept (changed since, gone, or failed: logged), unsafe (refused for now: logged). */
export type AfterDrop = 'done' | 'kept' | 'unsafe';

export async function afterDrop({ guard, afterPush, origin, log }: AfterDropArgs): Promise<AfterDrop> {
  const what = afterPush === null ? 'remove' : 'move to after_push';
  try {
    return await guard.use((held) =>
      inParent(held, origin.path, NO_FOLLOW, async (entry) => {
        const now = await lstat(entry).catch(() => undefined);
        if (!now) return 'kept';
        if (!isPushedVersion(now, origin)) {
          log.info({ path: origin.path }, 'kept a dropped file that changed after it was pushed; its new version follows');
          return 'kept';
        }
        if (afterPush !== null) return moveTo(entry, afterPush, origin);
        await unlink(entry);
        return 'done';
      }),
    );
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'kept';
    if (!isStevedoreError(error, 'SOURCE_UNSAFE')) {
      log.error({ path: origin.path, err: error }, `could not ${what} a pushed file`);
      return 'kept';
    }
    log.warn({ path: origin.path, reason: error.message }, `left a pushed file in place for now: could not ${what} it without leaving the watched directory`);
    return 'unsafe';
  }
}

const isPushedVersion = (now: Stats, origin: TaskOrigin) =>
  now.isFile() && now.size === origin.size && now.mtimeMs === origin.mtimeMs && (origin.ino === undefined || (now.ino === origin.ino && now.dev === origin.dev));

async function moveTo(entry: string, afterPush: string, origin: TaskOrigin): Promise<AfterDrop> {
  await mkdir(afterPush, { recursive: true });
  const dir = await ensureDirs(afterPush, path.posix.dirname(origin.path));
  try {
    const to = fdPath(dir.fd, path.posix.basename(origin.path));
    try {
      await rename(entry, to);
    } catch (error) {
      if (errnoCode(error) !== 'EXDEV') throw error;
      if (!(await copyAcross(entry, to, origin))) return 'kept';
      await unlink(entry);
    }
    return 'done';
  } finally {
    await dir.close();
  }
}

// Opens `rel` under the after_push directory, making what is missing, following no
// symlink: whoever writes into the drop folder may be able to write there too.
async function ensureDirs(base: string, rel: string): Promise<FileHandle> {
  let current = await open(base, DIR_FLAGS);
  try {
    for (const name of rel.split('/').filter((part) => part !== '.' && part !== '')) {
      await mkdir(fdPath(current.fd, name)).catch((error: unknown) => {
        if (errnoCode(error) !== 'EEXIST') throw error;
      });
      const next = await open(fdPath(current.fd, name), DIR_FLAGS).catch((error: unknown) => {
        throw errnoCode(error) === 'ENOTDIR' ? new StevedoreError('DEST_UNSAFE', `after_push: ${rel}: ${name} is not a directory (or is a symlink)`) : error;
      });
      await current.close();
      current = next;
    }
    return current;
  } catch (error) {
    await current.close();
    throw error;
  }
}

// after_push on another filesystem: a copy through descriptors, of the pushed inode
// only; false when the file changed meanwhile (its new version follows).
async function copyAcross(entry: string, to: string, origin: TaskOrigin): Promise<boolean> {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_TRUNC } = constants;
  const source = await open(entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    const stats = await source.stat();
    if (!isPushedVersion(stats, origin)) return false;
    const target = await open(to, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK, stats.mode & 0o7777);
    try {
      await copyHandle(source, target);
      await target.sync();
    } finally {
      await target.close();
    }
    return true;
  } finally {
    await source.close();
  }
}
