// Start-up: every task the journal still holds is verified against its staged file
// and handed back to be queued again; spool files no task refers to (uploads cut by a
// crash) go. What cannot be pushed any more goes to dead-letter here.
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors.js';
import { newTask, type Task, type TaskOrigin, type TaskRecord } from '../task.js';
import type { DeadLetter } from './dead-letter.js';
import type { Journal } from './journal.js';
import type { Spool } from './spool.js';

export interface RecoverArgs {
  records: TaskRecord[];
  spool: Spool;
  deadLetter: DeadLetter;
  journal: Journal;
  logger: Logger;
  /** True for a target the config still has. */
  known(target: string): boolean;
}

export interface Recovered {
  /** Verified: to be queued again. */
  requeued: TaskRecord[];
  /** Moved to dead-letter at start (their target is gone, or their file): to be registered, so GET /tasks/<id> tells the client. */
  failed: Task[];
  /** Watched files whose spool copy a crash cut short: to be staged again from the host. */
  restage: TaskOrigin[];
}

export async function recover({ records, spool, deadLetter, journal, logger, known }: RecoverArgs): Promise<Recovered> {
  const keep = new Set<string>();
  const requeued: TaskRecord[] = [];
  const failed: Task[] = [];
  const restage: TaskOrigin[] = [];
  const start = { spool, deadLetter, journal, failed };
  for (const record of records) {
    if (!known(record.target)) {
      // Else it would wait forever for a target that will never come back.
      const message = `target "${record.target}" is no longer configured`;
      await deadLetterAtStart(record, 'TARGET_UNKNOWN', message, start);
    } else if (record.kind === 'delete' || (await spool.verify(record.staged, record.bytes, record.sha256))) {
      keep.add(record.staged);
      requeued.push(record);
    } else if (await deadLetter.has(record.id)) {
      const task = Object.assign(newTask(record), { status: 'failed' as const, error: { code: 'INTERNAL', message: 'the agent stopped while moving it to dead-letter' } });
      await deadLetter.repair(task, 'the agent stopped while moving this file to dead-letter; its first reason is lost');
      await journal.append({ op: 'dead', id: record.id });
    } else if (record.origin) {
      // A watched file's copy is not flushed: the host file is the original.
      await journal.append({ op: 'discard', id: record.id });
      restage.push(record.origin);
    } else {
      // Gone or not matching its checksum: cut by a crash before it was acknowledged (its
      // fsync runs beside the journal's), or damaged since. Kept for a human either way.
      const present = await stat(spool.path(record.staged)).then(() => true, () => false);
      const [code, message] = present
        ? (['STAGED_CORRUPT', 'the staged file does not match its checksum'] as const)
        : (['STAGED_MISSING', 'the staged file is missing from the spool'] as const);
      await deadLetterAtStart(record, code, message, start);
    }
  }
  const orphans = await spool.sweep(keep);
  logger.info({ requeued: requeued.length, restage: restage.length, orphansRemoved: orphans }, 'recovered the journal');
  return { requeued, failed, restage };
}

type StartArgs = Pick<RecoverArgs, 'spool' | 'deadLetter' | 'journal'> & { failed: Task[] };

async function deadLetterAtStart(record: TaskRecord, code: ErrorCode, message: string, { spool, deadLetter, journal, failed }: StartArgs): Promise<void> {
  const task = newTask(record);
  Object.assign(task, { status: 'failed', error: { code, message } });
  await deadLetter.put(task, record.kind === 'put' ? spool.path(record.staged) : undefined, message);
  await journal.append({ op: 'dead', id: record.id });
  failed.push(task);
}
