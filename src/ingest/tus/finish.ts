// The end of a resumable upload: its bytes become a task, with the same promise as a
// 202. The data file gets a second name in the spool (a hard link: no copy), the task
// is journaled (the journal's flush makes that name durable), and only then is the
// upload marked as over. Until then the upload reports one byte short of its length,
// so a client that retries after a failure here (a full queue, a journal that cannot be
// written) sends that byte again instead of taking the upload for done.
import type { Hash } from 'node:crypto';
import { link } from 'node:fs/promises';
import { hashFile } from '../../one-buffer.js';
import type { Task } from '../../task.js';
import type { Spool } from '../../spool/spool.js';
import type { Intake } from '../intake.js';
import type { UploadFiles, UploadRecord } from './records.js';

export interface FinishDeps {
  intake: Intake;
  spool: Spool;
  files: UploadFiles;
}

/** Journals the upload's task; `running` is the SHA-256 of all its bytes when known. */
export async function finishUpload({ intake, spool, files }: FinishDeps, record: UploadRecord, running: Hash | undefined, requestId?: string): Promise<Task> {
  const admission = await intake.admit(1);
  let committed = false;
  try {
    const sha256 = running ? running.digest('hex') : (await hashFile(files.partPath(record.id))).sha256;
    const staged = spool.newFile();
    await link(files.partPath(record.id), staged.path);
    const received = { staged: staged.name, bytes: record.size, sha256, durable: Promise.resolve() };
    const { route, target, dest, options } = record;
    const [task] = await intake.commit([{ received, source: 'http', route, target, dest, options, ...(requestId === undefined ? {} : { requestId }) }]);
    committed = true;
    return task as Task;
  } finally {
    admission.done();
    if (!committed) intake.release(1);
  }
}
