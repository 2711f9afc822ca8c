// The `local` target: a host directory standing in for a container's filesystem.
// Each file lands atomically (a new name as a hard link of the staged file; a name that
// is taken through a temp name beside it, then rename), and
// nothing is written outside `root`, even through a symlink planted inside it.
import { constants } from 'node:fs';
import { chmod, chown, copyFile, link, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { StevedoreError, errnoCode, errorMessage, type ErrorCode } from '../errors.js';
import { randomName } from '../random.js';
import { fsyncDir, fsyncFile, removeFile } from '../durable.js';
import type { StagingLedger, StagingNote } from './ledger.js';
import { checkDest, failed, ok, pushError, stagedGone, type DeleteItem, type PushItem, type PushResult, type PutItem, type Target } from './target.js';

export interface LocalTargetOptions {
  name: string;
  root: string;
  /** Where an agent notes a batch's temp files while it runs (`stevedore push` has none). */
  ledger?: StagingLedger;
}

export function createLocalTarget({ name, root, ledger }: LocalTargetOptions): Target {
  // A batch's temp files are DIR/.stevedore-TAG-N.tmp. Each is renamed or removed before
  // the batch ends; only a killed agent leaves some, which its note names for the next run.
  // False (the note stays for the next push) when a directory that is there cannot be
  // read now, e.g. for want of a descriptor.
  async function removeTemps(rootReal: string, note: StagingNote): Promise<boolean> {
    const prefix = `.stevedore-${note.tag}-`;
    try {
      for (const dir of note.dirs) {
        const real = await ensureDir(rootReal, dir, { mode: undefined, log: { changed: new Set(), made: [] } }).catch(() => undefined);
        const entries = real === undefined ? [] : await readdir(real).catch((error: unknown) => (GONE.has(errnoCode(error) ?? '') ? [] : Promise.reject(error)));
        const left = entries.filter((entry) => entry.startsWith(prefix));
        await Promise.all(left.map((entry) => rm(path.join(real as string, entry), { force: true })));
      }
      return true;
    } catch {
      return false;
    }
  }

  return {
    name,
    runtime: 'local',
    async push(items, signal) {
      await mkdir(root, { recursive: true, mode: 0o755 });
      const rootReal = await realpath(root);
      await ledger?.sweep(name, root, (note) => removeTemps(rootReal, note));
      const note = { tag: randomName(9), where: root, dirs: [...new Set(items.flatMap((item) => (item.op === 'put' ? [path.posix.dirname(item.dest)] : [])))] };
      // Noted only once a file needs a temp name: one landing under a new name needs none.
      let noted: Promise<void> | undefined;
      let temps = 0;
      const tempName = async () => {
        await (noted ??= ledger?.note(name, note) ?? Promise.resolve());
        return `.stevedore-${note.tag}-${(temps += 1)}.tmp`;
      };
      const dirs = new Map<string, Promise<string | undefined>>();
      const dirLog: DirLog = { changed: new Set(), made: [] };
      const ensure: EnsureDir = (dir, mode, within) => {
        const key = `${mode ?? 'find'}:${within}:${dir}`;
        let real = dirs.get(key);
        if (!real) dirs.set(key, (real = ensureDir(rootReal, dir, { mode, within, log: dirLog })));
        return real;
      };
      const land = async (item: PushItem): Promise<PushResult> => {
        try {
          checkDest(item.dest);
          signal.throwIfAborted();
          const parent = item.op === 'put' ? await putOne(item, ensure, signal, tempName) : await deleteOne(item, ensure);
          if (parent) dirLog.changed.add(parent);
          return ok;
        } catch (error) {
          return toResult(error, item.dest, rootReal);
        }
      };
      // Deletes first: a directory removed and a file put under it in one batch must
      // end with the file there.
      const deletes = await Promise.all(items.map((item) => (item.op === 'delete' ? land(item) : undefined)));
      const results = await Promise.all(items.map((item, i) => deletes[i] ?? land(item)));
      if (noted) await ledger?.clear(name, note.tag);
      if (results.some((result) => !result.ok)) await removeEmpty(dirLog);
      // One fsync per changed directory makes every rename (and removal) durable; until
      // it has succeeded nothing may be reported landed.
      const unsynced = await Promise.all([...dirLog.changed].map((dir) => fsyncDir(dir).then(() => undefined, (error: unknown) => error)));
      const failure = unsynced.find((error) => error !== undefined);
      if (failure === undefined) return results;
      const error = pushError(new StevedoreError('TARGET_IO', `could not fsync a directory: ${errorMessage(failure)}`, { cause: failure }));
      return results.map((result) => (result.ok ? failed(error) : result));
    },
  };
}

/**
 * Resolves a container directory inside root, and inside `within` (the item's route or
 * watch dest) from there on; creates what is missing when given a mode.
 */
type EnsureDir = (dir: string, mode: number | undefined, within: string) => Promise<string | undefined>;

// The configured directory a destination may not leave through a symlink (target.ts).
const withinOf = (item: PushItem) => item.root ?? path.posix.dirname(item.dest);

/** What a batch did to directories (host paths). */
interface DirLog {
  /** Directories whose entries changed: each parent of a landed file, and of a directory made. */
  changed: Set<string>;
  /** Directories the batch made, each after its parent. */
  made: string[];
}

// A put that failed leaves no directory made for it: each one the batch made that is
// still empty goes, deepest first. rmdir refuses one that is not empty (a file landed
// in it, by this batch or another), which then stays, as does one it cannot remove.
async function removeEmpty({ changed, made }: DirLog): Promise<void> {
  for (const dir of [...made].reverse()) {
    if (await rmdir(dir).then(() => true, () => false)) changed.delete(dir);
  }
}

// A destination not there yet gets the staged inode linked straight under its name: a
// link is atomic and the inode complete, so no temp name, rename or cleanup (2 calls per
// file instead of 5). One that is there (a replaced file, a re-push after a crash) goes
// through a temp name and a rename over it. `tempName`: a short name of the batch's own,
// not the destination's name plus a suffix, which could pass NAME_MAX.
async function putOne(item: PutItem, ensure: EnsureDir, signal: AbortSignal, tempName: () => Promise<string>): Promise<string> {
  const parent = (await ensure(path.posix.dirname(item.dest), item.dirMode, withinOf(item))) as string;
  const final = path.join(parent, path.posix.basename(item.dest));
  let temp: string | undefined;
  try {
    const linkable = await ownStaged(item);
    signal.throwIfAborted();
    const direct = linkable ? await linkAt(item.source, final) : 'unsupported';
    if (direct === 'linked') return parent;
    temp = path.join(parent, await tempName());
    if (direct === 'unsupported' || (await linkAt(item.source, temp)) === 'unsupported') await copyStaged(item, temp);
    signal.throwIfAborted();
    await rename(temp, final);
    // Renaming one hard link onto another of the same inode (a re-push after a crash)
    // succeeds and does nothing: the temp name would stay behind.
    await removeFile(temp);
    return parent;
  } catch (error) {
    if (temp !== undefined) await rm(temp, { force: true });
    throw errnoCode(error) === 'ENOENT' && !(await exists(item.source)) ? await stagedGone(item, error) : error;
  }
}

// rm does not follow a symlink at `dest` itself, and the walk to its parent refuses
// any that leads outside root; a destination already gone is a success.
async function deleteOne(item: DeleteItem, ensure: EnsureDir): Promise<string | undefined> {
  const parent = await ensure(path.posix.dirname(item.dest), undefined, withinOf(item));
  if (parent === undefined) return undefined;
  await rm(path.join(parent, path.posix.basename(item.dest)), { recursive: true, force: true });
  return parent;
}

const exists = (file: string) => stat(file).then(() => true, () => false);

// The staged file is complete and on disk (flushed here if its copy was not: a watched
// file's), so on the same filesystem a hard link lands it with no second copy; the
// batch's directory fsync makes the name durable. Owner and mode are set on the staged
// name, inside the 0700 spool, before the inode appears in the target: a path-based
// chmod in the target could be redirected by a symlink swapped in. False when the staged
// name cannot be changed (state_dir read-only): a copy gets its owner, mode and flush on its own.
async function ownStaged(item: PutItem): Promise<boolean> {
  try {
    if (item.owner) await chown(item.source, item.owner.uid, item.owner.gid);
    await chmod(item.source, item.mode);
    // A drop watch removes its host file once this push is done: the bytes must be on disk by then.
    if (item.unflushed) await fsyncFile(item.source);
    return true;
  } catch (error) {
    if (LINK_UNSUPPORTED.has(errnoCode(error) ?? '')) return false;
    throw error;
  }
}

// 'exists': the name is taken; 'unsupported': links cannot be used here (another
// filesystem, no permission).
async function linkAt(source: string, to: string): Promise<'linked' | 'exists' | 'unsupported'> {
  try {
    await link(source, to);
    return 'linked';
  } catch (error) {
    const code = errnoCode(error) ?? '';
    if (code === 'EEXIST') return 'exists';
    if (LINK_UNSUPPORTED.has(code)) return 'unsupported';
    throw error;
  }
}

// A noted directory that is no longer there (or no longer a directory) holds no temp name.
const GONE = new Set(['ENOENT', 'ENOTDIR']);

const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'EROFS', 'EACCES']);

async function copyStaged(item: PutItem, temp: string): Promise<void> {
  await copyFile(item.source, temp, constants.COPYFILE_EXCL);
  // Read-only: the copy has the staged file's mode, which may lack the owner's write bit
  // (0400), and fchown, fchmod and fsync need no more.
  const handle = await open(temp, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (item.owner) await handle.chown(item.owner.uid, item.owner.gid);
    await handle.chmod(item.mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Walks `dir` from the root one component at a time, creating what is missing with
// `mode` (or answering undefined when there is no mode) and refusing any component
// (a planted symlink) that resolves outside root.
interface EnsureOptions {
  /** Makes what is missing with this mode; without it, a missing directory answers undefined. */
  mode: number | undefined;
  /** A container directory (a route's dest): from it on, a symlink may not lead outside it. */
  within?: string;
  log: DirLog;
}

// Walks `dir` from the root one component at a time, creating what is missing with
// `mode`. A symlink is followed only where it stays inside: the target's root, and from
// `within` on (itself resolved), inside `within`, as batch.sh does in a container. A
// dangling one is refused too: what it points at could be made by the next file.
async function ensureDir(rootReal: string, dir: string, { mode, within, log }: EnsureOptions): Promise<string | undefined> {
  const segments = dir.split('/').filter(Boolean);
  const depth = within === undefined ? Infinity : within.split('/').filter(Boolean).length;
  let current = rootReal;
  let limit = depth === 0 ? rootReal : undefined;
  for (const [i, segment] of segments.entries()) {
    const next = path.join(current, segment);
    // ENOTDIR: the way went through a symlink to a file; for a put, mkdir says so.
    const stats = await lstat(next).catch((error: unknown) => {
      if (GONE.has(errnoCode(error) ?? '')) return undefined;
      throw error;
    });
    if (!stats) {
      if (mode === undefined) return undefined;
      current = await makeDir(current, next, mode, log);
    } else if (stats.isSymbolicLink()) {
      const at = `/${segments.slice(0, i + 1).join('/')}`;
      current = await followLink(next, at, limit ?? rootReal, limit === undefined ? 'the target root' : (within as string));
    } else if (stats.isDirectory()) {
      current = next;
    } else if (mode === undefined) {
      // Looked for, not made: with a file in the way nothing is there (a delete's dest is gone).
      return undefined;
    } else {
      throw new StevedoreError('DEST_UNSAFE', `${dir}: ${segment} exists and is not a directory`);
    }
    if (i + 1 === depth) limit = current;
  }
  return current;
}

async function makeDir(parent: string, next: string, mode: number, { changed, made }: DirLog): Promise<string> {
  const ours = await mkdir(next, { mode }).then(() => true, (error: unknown) => {
    if (errnoCode(error) !== 'EEXIST') throw error;
    return false;
  });
  if (ours) made.push(next);
  await open(next, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_DIRECTORY).then(async (h) => {
    await h.chmod(mode);
    await h.close();
  });
  changed.add(parent);
  return next;
}

// `at`: the link's container path, for the message (the same words as batch.sh's).
async function followLink(link: string, at: string, limit: string, what: string): Promise<string> {
  const real = await realpath(link).catch((error: unknown) => {
    if (errnoCode(error) !== 'ENOENT') throw error;
    throw new StevedoreError('DEST_UNSAFE', `${at} is a dangling symlink`);
  });
  if (!isInside(limit, real)) throw new StevedoreError('DEST_UNSAFE', `${at} leads outside ${what} through a symlink`);
  return real;
}

const isInside = (root: string, candidate: string) => candidate === root || candidate.startsWith(`${root}${path.sep}`);

const errnoToCode: Record<string, ErrorCode> = {
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
  EISDIR: 'DEST_IS_DIR',
  ENOTEMPTY: 'DEST_IS_DIR',
  EEXIST: 'DEST_IS_DIR',
  ENOTDIR: 'DEST_UNSAFE',
  ELOOP: 'DEST_UNSAFE',
  ENAMETOOLONG: 'DEST_TOO_LONG',
  ENOSPC: 'TARGET_FULL',
  EDQUOT: 'TARGET_FULL',
};

// What the target's filesystem said, by errno; the rest (the host out of descriptors
// included) by pushError's one rule.
function toResult(error: unknown, dest: string, rootReal: string): PushResult {
  const code = errnoToCode[errnoCode(error) ?? ''];
  if (code === undefined) return failed(pushError(error));
  // The host path can be kilobytes long: say how long, not what (the task names its dest).
  const message = code === 'DEST_TOO_LONG' ? tooLong(dest, rootReal) : errorMessage(error);
  return failed(new StevedoreError(code, message, { cause: error }));
}

const tooLong = (dest: string, rootReal: string) =>
  `too long for this host: under ${rootReal} the destination is a ${Buffer.byteLength(path.join(rootReal, dest))}-byte path (PATH_MAX is 4096 bytes, the NUL and the temp name included), or one of its names is longer than the filesystem allows (NAME_MAX)`;
