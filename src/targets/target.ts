// The contract every runtime adapter implements. A target takes a batch of files
// bound for it and answers with one result per file, in the same order: real runtimes
// move many small files in one archive stream, so one call per file is not the unit.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { StevedoreError, errorMessage, type ErrorCode } from '../errors.js';
import { isOutOfFiles } from '../open-files.js';

interface ItemBase {
  /** Task id, for logs. */
  id: string;
  /** Absolute path inside the container. */
  dest: string;
  /** Command run in the container once after the batch, if this item landed (route/watch `exec`). */
  exec?: readonly string[];
  /**
   * The configured directory `dest` lies under (a route's, watch's or legacy rule's
   * dest; its parent when absent): a symlink planted below it that leads outside it is
   * refused (DEST_UNSAFE), so the file cannot land outside what the config allows.
   */
  root?: string;
}

/** Land a staged file at `dest`. */
export interface PutItem extends ItemBase {
  op: 'put';
  /** Host path of the staged file. */
  source: string;
  bytes: number;
  mode: number;
  dirMode: number;
  owner?: { uid: number; gid: number };
  /**
   * Its bytes may still be only in the page cache: a watched file's copy is not flushed
   * when staged (its host file stays until the push), nor `stevedore push`'s snapshot. A
   * target that lands the staged inode itself flushes it first: once the push is done,
   * a drop watch removes the host file.
   */
  unflushed?: boolean;
  /** Told the bytes read from `source` so far, by targets that stream it (`stevedore push`'s progress bar). */
  onProgress?: (bytes: number) => void;
}

/** Remove `dest` (a file, or a directory with everything under it); gone already is fine. */
export interface DeleteItem extends ItemBase {
  op: 'delete';
}

export type PushItem = PutItem | DeleteItem;

/** `warning`: the file landed but something after it failed (its `exec`); not retried. */
export type PushResult = { ok: true; warning?: StevedoreError } | { ok: false; error: StevedoreError };

export interface Target {
  readonly name: string;
  readonly runtime: string;
  /** Never rejects for a per-file failure: each item gets its own result. */
  push(items: readonly PushItem[], signal: AbortSignal): Promise<PushResult[]>;
}

/**
 * transient: retry with backoff, spending an attempt. permanent: dead-letter now.
 * down: the target itself is unreachable; wait for it without spending attempts.
 * host: the host lacks what the push needs (a file descriptor, its spool); waited for
 * the same way, but looked at again sooner: it comes back with the load or the mount.
 */
export type FailureKind = 'transient' | 'permanent' | 'down' | 'host';

const kinds: Partial<Record<ErrorCode, FailureKind>> = {
  DEST_UNSAFE: 'permanent',
  DEST_IS_DIR: 'permanent',
  DEST_TOO_LONG: 'permanent',
  PERMISSION_DENIED: 'permanent',
  TARGET_NOT_FOUND: 'permanent',
  CONTAINER_UNSUPPORTED: 'permanent',
  STAGED_MISSING: 'permanent',
  TARGET_DOWN: 'down',
  TOO_MANY_OPEN_FILES: 'host',
  SPOOL_UNAVAILABLE: 'host',
};

export const failureKind = (error: unknown): FailureKind => kinds[pushError(error).code] ?? 'transient';

/**
 * A staged file that cannot be found: lost (STAGED_MISSING, dead-lettered) when its
 * directory, the spool, is there; when the spool is gone too, state_dir is (removed,
 * unmounted): SPOOL_UNAVAILABLE, and the push waits for it to come back.
 */
export async function stagedGone(item: PutItem, cause: unknown): Promise<StevedoreError> {
  const spool = path.dirname(item.source);
  if (await stat(spool).then(() => true, () => false)) {
    return new StevedoreError('STAGED_MISSING', `the staged file for ${item.dest} is gone from the spool`, { cause });
  }
  return new StevedoreError('SPOOL_UNAVAILABLE', `the spool ${spool} is gone (state_dir removed or unmounted?)`, { cause });
}

/**
 * The one rule for what a failed push reports. The host out of file descriptors
 * (EMFILE, ENFILE) anywhere in it (opening or fsyncing a file, linking, copying,
 * spawning a runtime's CLI, reading a staged file) is TOO_MANY_OPEN_FILES, which waits
 * without spending attempts, whatever the step wrapped it in. A cancelled push is
 * PUSH_TIMEOUT; anything else that is not a StevedoreError is TARGET_IO.
 */
export function pushError(error: unknown): StevedoreError {
  const known =
    error instanceof StevedoreError
      ? error
      : error instanceof Error && error.name === 'AbortError'
        ? new StevedoreError('PUSH_TIMEOUT', 'push cancelled or timed out', { cause: error })
        : new StevedoreError('TARGET_IO', errorMessage(error), { cause: error });
  if (known.code === 'TOO_MANY_OPEN_FILES' || !isOutOfFiles(known)) return known;
  return new StevedoreError('TOO_MANY_OPEN_FILES', `the host is out of file descriptors: ${known.message}`, { cause: known });
}

/**
 * `target.push` as the queue and `stevedore push` run it: one result per item, in order,
 * and every failure (a thrown one too) through pushError.
 */
export async function pushItems(target: Target, items: readonly PushItem[], signal: AbortSignal): Promise<PushResult[]> {
  let results: readonly PushResult[];
  try {
    results = await target.push(items, signal);
  } catch (error) {
    const failure = pushError(error instanceof StevedoreError ? error : new StevedoreError('TARGET_IO', `push to ${target.name} failed: ${errorMessage(error)}`, { cause: error }));
    return items.map(() => failed(failure));
  }
  return items.map((_, i) => {
    const result = results[i] ?? failed(new StevedoreError('TARGET_IO', 'the target returned no result for this file'));
    return result.ok ? result : failed(pushError(result.error));
  });
}

export const ok: PushResult = { ok: true };
export const failed = (error: StevedoreError): PushResult => ({ ok: false, error });

// Ingest validates paths, but a target keeps its own promise: a `..` segment would
// climb out of the destination without any symlink.
export function checkDest(dest: string): void {
  if (dest.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw new StevedoreError('DEST_UNSAFE', `${dest}: "." and ".." segments are not allowed`);
  }
  if (!dest.startsWith('/') || dest === '/') throw new StevedoreError('DEST_UNSAFE', `${dest}: not a path under the root`);
}
