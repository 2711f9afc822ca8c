// Stages one settled host file through the intake, as an upload would be: admitted,
// copied into the spool with its checksum, journaled, queued. Always a copy, never a
// link, even on the spool's own disk: a drop folder's writer may still change the file
// in place, and the staged bytes must stay those the checksum was taken of.
import { createReadStream, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, isStevedoreError, type StevedoreError } from '../../errors.js';
import { isOutOfFiles, type OutOfFilesAlarm } from '../../open-files.js';
import type { Accepted, Admission, Intake } from '../intake.js';

/**
 * queued; skipped (gone, or not ours to push); later (no queue slot now, or a read that
 * failed); full (no room in the spool's disk now, or no spool: state_dir gone or
 * read-only); changed (written to while copied).
 */
export type StageOutcome = 'queued' | 'skipped' | 'later' | 'full' | 'changed';

export interface StageArgs {
  file: string;
  /** The watched directory, symlinks resolved. */
  root: string;
  stats: Stats;
  intake: Intake;
  log: Logger;
  accepted: Omit<Accepted, 'received'>;
  /** Told when the outcome is `full`, with why (the watch says it once, not per file). */
  noRoom(error: StevedoreError): void;
  outOfFiles: OutOfFilesAlarm;
}

export async function stageFile({ file, root, stats, intake, log, accepted, noRoom, outOfFiles }: StageArgs): Promise<StageOutcome> {
  const real = await realpath(file).catch(() => undefined);
  if (real === undefined) return 'skipped';
  if (real !== root && !real.startsWith(`${root}${path.sep}`)) {
    log.warn({ path: file, resolves: real }, 'skipping a symlink that leads outside the watched directory');
    return 'skipped';
  }
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
    const received = await intake.receive(createReadStream(real), { maxBytes: Number.MAX_SAFE_INTEGER, flush: false }, stats.size);
    const after = await stat(real).catch(() => undefined);
    if (after?.size !== received.bytes || after.mtimeMs !== stats.mtimeMs) {
      await intake.discard(received);
      return after ? 'changed' : 'skipped';
    }
    await intake.commit([{ ...accepted, received }]);
    committed = true;
    return 'queued';
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 'skipped';
    if (cannotTake(error)) return full(error, noRoom);
    if (isOutOfFiles(error)) outOfFiles.note(error, { watch: accepted.route, path: file });
    else log.error({ path: file, err: error }, 'could not stage a watched file; trying again shortly');
    return 'later';
  } finally {
    admission.done();
    if (!committed) intake.release(1);
  }
}

// No room in the spool's disk, or no spool at all (state_dir gone or read-only).
const cannotTake = (error: unknown): error is StevedoreError => isStevedoreError(error, 'INSUFFICIENT_STORAGE') || isStevedoreError(error, 'SPOOL_UNAVAILABLE');

function full(error: StevedoreError, noRoom: (error: StevedoreError) => void): 'full' {
  noRoom(error);
  return 'full';
}
