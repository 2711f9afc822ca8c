// Stages one settled host file through the intake, as an upload would be: admitted,
// copied into the spool with its checksum, journaled, queued. Always a copy, never a
// link, even on the spool's own disk: a drop folder's writer may still change the file
// in place, and the staged bytes must stay those the checksum was taken of.
// The file is read through one descriptor, opened by a walk that cannot leave the
// folder (beneath.ts) and checked to be the regular file, the very inode, that settled.
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { errnoCode, isStevedoreError, type StevedoreError } from '../../errors.js';
import { isOutOfFiles, type OutOfFilesAlarm } from '../../open-files.js';
import type { Accepted, Admission, Intake } from '../intake.js';
import { isBlocked, unsafe } from './beneath.js';

/**
 * queued; skipped (gone, or not ours to push); later (no queue slot now, or a read that
 * failed); full (no room in the spool's disk now, or no spool: state_dir gone or
 * read-only); changed (written to while copied); blocked (a directory on its way is a
 * symlink for now).
 */
export type StageOutcome = 'queued' | 'skipped' | 'later' | 'full' | 'changed' | 'blocked';

/** What settled of a file: what gets staged, or nothing if it changed since. */
export interface Version {
  size: number;
  mtimeMs: number;
  dev: number;
  ino: number;
}

/** A Version alone, so that a Stats object is not kept while its file waits. */
export const versionOf = ({ size, mtimeMs, dev, ino }: Version): Version => ({ size, mtimeMs, dev, ino });

export interface StageArgs {
  /** Absolute, for logs. */
  file: string;
  /** Relative to the watched folder. */
  rel: string;
  /** As the file settled: its inode, size and mtime are what gets staged, or nothing. */
  stats: Version;
  /** Opens the file inside the folder (never blocking on a FIFO). */
  open(): Promise<FileHandle>;
  intake: Intake;
  log: Logger;
  accepted: Omit<Accepted, 'received'>;
  /** Told when the outcome is `full`, with why (the watch says it once, not per file). */
  noRoom(error: StevedoreError): void;
  /** Told when the file may not be read: outside the folder, through a symlink, not a regular file, no permission. */
  refused(error: StevedoreError): void;
  outOfFiles: OutOfFilesAlarm;
}

export async function stageFile(args: StageArgs): Promise<StageOutcome> {
  let handle: FileHandle;
  try {
    handle = await args.open();
  } catch (error) {
    return failedTo('open', error, args);
  }
  try {
    const now = await handle.stat();
    if (!now.isFile()) {
      args.refused(unsafe(args.rel, 'special'));
      return 'skipped';
    }
    if (now.dev !== args.stats.dev || now.ino !== args.stats.ino) return 'changed';
    return await copyIn(handle, args);
  } catch (error) {
    return failedTo('stage', error, args);
  } finally {
    await handle.close();
  }
}

async function copyIn(handle: FileHandle, { file, stats, intake, accepted, noRoom, log }: StageArgs): Promise<StageOutcome> {
  let admission: Admission;
  try {
    admission = await intake.admit(1, stats.size);
  } catch (error) {
    if (isStevedoreError(error, 'SHUTTING_DOWN')) return 'skipped';
    if (cannotTake(error)) return full(error, noRoom);
    log.debug({ path: file, reason: (error as Error).message }, 'no queue slot to stage a watched file yet');
    return 'later';
  }
  let committed = false;
  try {
    // No fsync of the copy: the host file stays until the push succeeded, and a copy a
    // crash cut short is staged again from it at the next start (see recover.ts).
    // Read up to the settled size only: no read just to find the end (a file that grew
    // since is found changed below either way).
    const body = handle.createReadStream({ start: 0, ...(stats.size > 0 ? { end: stats.size - 1 } : {}), autoClose: false });
    const received = await intake.receive(body, { maxBytes: Number.MAX_SAFE_INTEGER, flush: false }, stats.size);
    const after = await handle.stat();
    if (after.size !== received.bytes || after.mtimeMs !== stats.mtimeMs) {
      await intake.discard(received);
      return 'changed';
    }
    await intake.commit([{ ...accepted, received }]);
    committed = true;
    return 'queued';
  } finally {
    admission.done();
    if (!committed) intake.release(1);
  }
}

function failedTo(what: 'open' | 'stage', error: unknown, { file, rel, log, refused, noRoom, outOfFiles, accepted }: StageArgs): StageOutcome {
  const code = errnoCode(error);
  if (isStevedoreError(error, 'SOURCE_UNSAFE')) {
    if (isBlocked(error)) return 'blocked';
    refused(error);
    return 'skipped';
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'skipped';
  // A file the agent may not read (chmod 000): said once, and looked at again with the
  // backoff of any read that failed, until a chmod lets it in.
  if (code === 'EACCES' || code === 'EPERM') {
    refused(unsafe(rel, 'denied'));
    return 'later';
  }
  if (cannotTake(error)) return full(error, noRoom);
  if (isOutOfFiles(error)) outOfFiles.note(error, { watch: accepted.route, path: file });
  else log.error({ path: file, err: error }, `could not ${what} a watched file; trying again shortly`);
  return 'later';
}

// No room in the spool's disk, or no spool at all (state_dir gone or read-only).
const cannotTake = (error: unknown): error is StevedoreError => isStevedoreError(error, 'INSUFFICIENT_STORAGE') || isStevedoreError(error, 'SPOOL_UNAVAILABLE');

function full(error: StevedoreError, noRoom: (error: StevedoreError) => void): 'full' {
  noRoom(error);
  return 'full';
}
