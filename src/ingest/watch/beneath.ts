// Reaching a path under a watched folder without ever leaving it. The folder's writer
// is untrusted and can swap any directory for a symlink at any instant, so a path is
// never handed to the kernel whole: the walk starts at a held descriptor of the folder
// and opens one component at a time with O_NOFOLLOW, each relative to the descriptor of
// the one before (`/proc/self/fd/N/NAME` names a child of descriptor N, which is what
// openat() would do). A symlink met on the way is followed only where the watch allows
// it (mirror) and only while it stays inside the folder. O_NONBLOCK everywhere: a FIFO
// swapped in opens at once instead of parking a thread-pool thread until a writer comes.
import { constants, type Stats } from 'node:fs';
import { lstat, open, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StevedoreError, errnoCode } from '../../errors.js';

/** The watched folder as held open by its guard. */
export interface HeldRoot {
  fd: number;
  /** The folder as configured, and with symlinks resolved: an absolute link into either stays inside. */
  paths: readonly string[];
}

// libuv adds O_CLOEXEC to every open itself.
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
export const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
// Linux's own limit on links followed in one lookup.
const MAX_LINKS = 40;
// Opens of one walk repeated because their entry was swapped between open and readlink.
const MAX_RETRIES = 4;
const AGAIN = Symbol('again');

/** `/proc/self/fd/N`, or the entry NAME of the directory open as N. */
export const fdPath = (fd: number, name?: string): string => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

export interface WalkOptions {
  /** Follow symlinks that stay inside the folder (mirror); false refuses any (drop). */
  follow: boolean;
}

const split = (rel: string) => rel.split('/').filter((part) => part !== '' && part !== '.');

/**
 * Opens `rel` (relative to the folder; '' is the folder itself) as a directory or a
 * file. Throws SOURCE_UNSAFE for a path that leaves the folder or meets a symlink it
 * may not follow, and the errno error (ENOENT, ENOTDIR…) for one that is not there.
 * A file is opened read-only and non-blocking: check what it is with `handle.stat()`.
 * `whole`: the path to name in a refusal, when `rel` is the parent of what is wanted.
 */
export async function openBeneath(root: HeldRoot, rel: string, kind: 'file' | 'dir', { follow }: WalkOptions, whole = rel): Promise<FileHandle> {
  let todo = split(rel);
  let at: string[] = [];
  let current: FileHandle | undefined;
  let links = 0;
  let retries = 0;
  const here = () => current?.fd ?? root.fd;
  const retry = (error: unknown): typeof AGAIN => {
    if ((retries += 1) > MAX_RETRIES) throw error;
    return AGAIN;
  };
  // Back to the folder, to walk `parts` from there (an absolute link, or `..`).
  const restart = async (parts: string[]) => {
    await current?.close();
    current = undefined;
    at = [];
    todo = [...parts, ...todo];
  };
  try {
    while (todo.length > 0) {
      const name = todo.shift() as string;
      if (name === '..') {
        if (at.length === 0) throw unsafe(whole, 'outside');
        await restart(at.slice(0, -1));
        continue;
      }
      const flags = todo.length === 0 && kind === 'file' ? FILE_FLAGS : DIR_FLAGS;
      const next = await open(fdPath(here(), name), flags).catch(async (error: unknown) => {
        const target = await linkTarget(here(), name, error);
        // Not a symlink after all: swapped back since the open; that open again.
        if (target === undefined) return retry(error);
        const link = { link: target, at: [...at, name].join('/') };
        if (!follow) throw unsafe(whole, 'symlink', link);
        if ((links += 1) > MAX_LINKS) throw unsafe(whole, 'loop', link);
        if (target.startsWith('/') && insideOf(root, target) === undefined) throw unsafe(whole, 'outside', link);
        return target;
      });
      if (next === AGAIN) {
        todo.unshift(name);
        continue;
      }
      if (typeof next === 'string') {
        if (next.startsWith('/')) await restart(split(insideOf(root, next) as string));
        else todo = [...split(next), ...todo];
        continue;
      }
      await current?.close();
      current = next;
      at.push(name);
    }
    // The folder itself: a descriptor of its own, which the caller may close
    // (/proc/self/fd/N is a link to follow, unlike any name inside the folder).
    return current ?? (await open(fdPath(root.fd), O_RDONLY | O_DIRECTORY | O_NONBLOCK));
  } catch (error) {
    await current?.close();
    throw error;
  }
}

// ENOTDIR (O_DIRECTORY) or ELOOP (O_NOFOLLOW) from a symlink: its target; undefined
// when the entry is no symlink now (EINVAL: it changed since the open, or the ENOTDIR
// was a regular file's, which the next open says again). Anything else: the open's error.
async function linkTarget(fd: number, name: string, error: unknown): Promise<string | undefined> {
  const code = errnoCode(error);
  if (code !== 'ENOTDIR' && code !== 'ELOOP') throw error;
  return readlink(fdPath(fd, name)).catch((readError: unknown) => {
    if (errnoCode(readError) === 'EINVAL') return undefined;
    throw error;
  });
}

// An absolute link target, relative to the folder when it starts with one of its
// spellings. Not normalized: a `..` in it is walked like any other, from the folder.
function insideOf(root: HeldRoot, target: string): string | undefined {
  for (const base of root.paths) {
    if (target === base) return '';
    if (target.startsWith(`${base}/`)) return target.slice(base.length + 1);
  }
  return undefined;
}

/** Why a path is refused: each says what the watch logs. */
export type Refusal = 'outside' | 'symlink' | 'loop' | 'special' | 'encoding' | 'denied' | 'name';

const WHY: Record<Refusal, string> = {
  outside: 'it leads outside the watched directory',
  symlink: 'a symlink is in the way, and this watch follows none',
  loop: `more than ${MAX_LINKS} symlinks in a row`,
  special: 'not a regular file (a FIFO, socket or device is never read)',
  encoding: 'its name is not valid UTF-8, so it cannot be opened by name',
  denied: 'the agent may not read it (permission denied)',
  name: 'its name cannot be a container path',
};

/** A refusal for a symlink on the way to the file, not at the file itself: maybe only for now. */
export const isBlocked = (error: StevedoreError): boolean => {
  const { at, path: rel } = error.details;
  return typeof at === 'string' && at !== rel;
};

/** SOURCE_UNSAFE; `link`: the symlink met (its target, and where it is relative to the folder). */
export const unsafe = (rel: string, kind: Refusal, link?: { link: string; at: string }) =>
  new StevedoreError('SOURCE_UNSAFE', `${rel}: ${WHY[kind]}`, { details: { path: rel, kind, ...link } });

/**
 * lstat of `rel`'s last component, its parent reached by the walk. A name directly in
 * the folder costs one call, since the folder's descriptor is its parent.
 */
export async function lstatBeneath(root: HeldRoot, rel: string, options: WalkOptions): Promise<Stats> {
  const parent = path.posix.dirname(rel);
  if (parent === '.') return lstat(fdPath(root.fd, rel));
  const dir = await openBeneath(root, parent, 'dir', options, rel);
  try {
    return await lstat(fdPath(dir.fd, path.posix.basename(rel)));
  } finally {
    await dir.close();
  }
}

/** What `rel` is: with `follow`, a symlink's target (opened non-blocking to be sure it stays inside). */
export async function statBeneath(root: HeldRoot, rel: string, options: WalkOptions): Promise<Stats> {
  const stats = await lstatBeneath(root, rel, options);
  if (!stats.isSymbolicLink() || !options.follow) return stats;
  const handle = await openBeneath(root, rel, 'file', options);
  try {
    return await handle.stat();
  } finally {
    await handle.close();
  }
}

/**
 * Runs `work` on the last component of `rel` inside its parent, which is held open
 * meanwhile. A name directly in the folder needs no open: the folder's descriptor is held.
 */
export async function inParent<T>(root: HeldRoot, rel: string, options: WalkOptions, work: (entry: string, dirFd: number) => Promise<T>): Promise<T> {
  const parent = path.posix.dirname(rel);
  if (parent === '.') return work(fdPath(root.fd, rel), root.fd);
  const dir = await openBeneath(root, parent, 'dir', options, rel);
  try {
    return await work(fdPath(dir.fd, path.posix.basename(rel)), dir.fd);
  } finally {
    await dir.close();
  }
}
