// The contract every runtime adapter implements. A target takes a batch of files
// bound for it and answers with one result per file, in the same order: real runtimes
// move many small files in one archive stream, so one call per file is not the unit.
import { StevedoreError, type ErrorCode } from '../errors.js';

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
 * down: the target itself is unreachable (or the host has no file descriptor left to
 * reach it with); wait for it without spending attempts.
 */
export type FailureKind = 'transient' | 'permanent' | 'down';

const kinds: Partial<Record<ErrorCode, FailureKind>> = {
  DEST_UNSAFE: 'permanent',
  DEST_IS_DIR: 'permanent',
  DEST_TOO_LONG: 'permanent',
  PERMISSION_DENIED: 'permanent',
  TARGET_NOT_FOUND: 'permanent',
  CONTAINER_UNSUPPORTED: 'permanent',
  STAGED_MISSING: 'permanent',
  TARGET_DOWN: 'down',
  TOO_MANY_OPEN_FILES: 'down',
};

export const failureKind = (error: StevedoreError): FailureKind => kinds[error.code] ?? 'transient';

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
