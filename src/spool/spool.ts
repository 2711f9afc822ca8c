// The staging area: every accepted file is written here under a random name before
// its task is journaled, and stays until its push succeeded or it was dead-lettered.
import { randomName } from '../random.js';
import { chmod, mkdir, readdir, rm, statfs } from 'node:fs/promises';
import { removeFile } from '../durable.js';
import { hashFile } from '../one-buffer.js';
import path from 'node:path';

export interface StagedFile {
  name: string;
  path: string;
}

export interface Spool {
  readonly dir: string;
  init(): Promise<void>;
  /** A fresh random name; the writer must create it with O_EXCL ("wx"), mode 0600. */
  newFile(): StagedFile;
  path(name: string): string;
  remove(name: string): Promise<void>;
  /** Removes files no live task refers to (partial uploads from before a crash); returns how many. */
  sweep(keep: ReadonlySet<string>): Promise<number>;
  freeBytes(fresh?: boolean): Promise<number>;
  /** True when the staged file has exactly these bytes (a crash can leave it short). */
  verify(name: string, bytes: number, sha256: string): Promise<boolean>;
}

export function createSpool(dir: string): Spool {
  // Staged names are ours (random, flat): anything else is a bug, never a path to follow.
  const filePath = (name: string) => {
    if (!/^[\w-]+\.staged$/.test(name)) throw new Error(`not a staged file name: ${JSON.stringify(name)}`);
    return path.join(dir, name);
  };
  let free: { at: number; value: Promise<number> } = { at: 0, value: Promise.resolve(0) };
  return {
    dir,
    async init() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await chmod(dir, 0o700);
    },
    newFile() {
      const name = `${randomName(12)}.staged`;
      return { name, path: filePath(name) };
    },
    path: filePath,
    remove: (name) => removeFile(filePath(name)),
    async sweep(keep) {
      const orphans = (await readdir(dir)).filter((name) => !keep.has(name));
      await Promise.all(orphans.map((name) => rm(path.join(dir, name), { force: true, recursive: true })));
      return orphans.length;
    },
    async verify(name, bytes, sha256) {
      const found = await hashFile(filePath(name)).catch(() => undefined);
      return found?.bytes === bytes && found.sha256 === sha256;
    },
    // Asked before every upload: a reading up to 100 ms old is plenty while there is
    // room, but near the limit a burst would overshoot it on a stale figure, so
    // `fresh` asks the disk again.
    async freeBytes(fresh = false) {
      if (fresh || Date.now() - free.at > 100) free = { at: Date.now(), value: statfs(dir).then((s) => s.bavail * s.bsize) };
      return free.value.catch((error: unknown) => {
        free.at = 0;
        throw error;
      });
    },
  };
}
