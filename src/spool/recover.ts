// Start-up: every task the journal still holds is verified against its staged file
// and queued again; spool files no task refers to (uploads cut by a crash) go.
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Registry } from '../queue/registry.js';
import type { Scheduler } from '../queue/scheduler.js';
import { newTask, type TaskRecord } from '../queue/task.js';
import type { DeadLetter } from './dead-letter.js';
import type { Journal } from './journal.js';
import type { Spool } from './spool.js';

export interface RecoverArgs {
  records: TaskRecord[];
  spool: Spool;
  deadLetter: DeadLetter;
  journal: Journal;
  scheduler: Scheduler;
  registry: Registry;
  logger: Logger;
}

/** Resolves with the records queued again. */
export async function recover({ records, spool, deadLetter, journal, scheduler, registry, logger }: RecoverArgs): Promise<TaskRecord[]> {
  const keep = new Set<string>();
  const requeued: TaskRecord[] = [];
  for (const record of records) {
    if (record.kind === 'delete' || (await spool.verify(record.staged, record.bytes, record.sha256))) {
      keep.add(record.staged);
      requeued.push(record);
      scheduler.enqueue(newTask(record));
    } else if (await deadLetter.has(record.id)) {
      await journal.append({ op: 'dead', id: record.id });
    } else {
      await deadLetterBroken(record, { spool, deadLetter, journal, registry });
    }
  }
  const orphans = await spool.sweep(keep);
  logger.info({ requeued: requeued.length, orphansRemoved: orphans }, 'recovered the journal');
  return requeued;
}

// A journaled file that is gone or does not match its checksum: cut by a crash before
// it was acknowledged (its fsync runs beside the journal's), or damaged since. Either
// way it is kept for a human in the dead-letter store, never silently dropped.
async function deadLetterBroken(record: TaskRecord, { spool, deadLetter, journal, registry }: Omit<RecoverArgs, 'records' | 'scheduler' | 'logger'>): Promise<void> {
  const task = newTask(record);
  const present = await stat(spool.path(record.staged)).then(() => true, () => false);
  const code = present ? 'STAGED_CORRUPT' : 'STAGED_MISSING';
  const message = present ? 'the staged file does not match its checksum' : 'the staged file is missing from the spool';
  Object.assign(task, { status: 'failed', error: { code, message } });
  await deadLetter.put(task, spool.path(record.staged), message);
  await journal.append({ op: 'dead', id: record.id });
  registry.add(task); // logs it, and GET /tasks/<id> can tell the client what happened
}
