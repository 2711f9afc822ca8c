// The few fsync patterns everything durable is built from, and the one way a running
// agent makes a directory under state_dir.
import { closeSync, fdatasync, open as openFd, write } from 'node:fs';
import { mkdir, open, rename, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from './errors.js';
import { randomName } from './random.js';

// Opens `target` read-only just to flush it: an fd of any mode syncs the inode.
async function flush(target: string, how: 'sync' | 'datasync'): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle[how]();
  } finally {
    await handle.close();
  }
}

/** Makes the names created in (or removed from) `dir` survive a crash. */
export const fsyncDir = (dir: string): Promise<void> => flush(dir, 'sync');

/** fsyncs the data of a file that was written and closed earlier. */
export const fsyncFile = (file: string): Promise<void> => flush(file, 'datasync');

/**
 * Makes `dir` (0700), never its parents: with state_dir gone, the agent waits for it
 * rather than making it again (see state-dir.ts). False when it was there already.
 */
export async function makeDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: 0o700 });
    return true;
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw error;
  }
}

/** Replaces `file` atomically with `data`: temp file, fsync, rename, fsync the directory. */
export async function writeFileDurable(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const temp = `${file}.${randomName(6)}.tmp`;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(file));
}

/**
 * Creates `file` (O_EXCL, 0600) holding `data`, its bytes flushed when `flush`: what an
 * upload's small body needs before its `202`. Callback fs, not fs/promises: no FileHandle
 * or promise per step, and the close runs here on the main thread (closing a regular
 * file after its flush is a cheap call, not worth a round trip to the thread pool), so
 * three round trips (open, write, fdatasync) instead of writeFile's four.
 */
export function writeNewFile(file: string, data: Uint8Array, flush: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    openFd(file, 'wx', 0o600, (opening, fd) => {
      if (opening) return reject(opening);
      const finish = (error: Error | null) => {
        try {
          closeSync(fd);
        } catch (closing) {
          error ??= closing as Error;
        }
        if (error) reject(error);
        else resolve();
      };
      // A write to a regular file can still stop short (a disk filling up): go on from there.
      const writeFrom = (offset: number) =>
        write(fd, data, offset, data.length - offset, null, (error, written) => {
          if (error) return finish(error);
          if (written === 0 && offset < data.length) return finish(Object.assign(new Error(`${file}: a write made no progress`), { code: 'EIO' }));
          if (offset + written < data.length) return writeFrom(offset + written);
          if (flush) fdatasync(fd, finish);
          else finish(null);
        });
      writeFrom(0);
    });
  });
}

/** Removes a file that may be gone already: one unlink (fs.rm lstats the name twice first). */
export async function removeFile(file: string): Promise<void> {
  await unlink(file).catch((error: unknown) => {
    if (errnoCode(error) !== 'ENOENT') throw error;
  });
}
