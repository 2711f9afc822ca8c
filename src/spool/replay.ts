// A dead-letter entry goes back to work: its bytes are linked into the spool under a
// new name, a new task is journaled, and only then is the entry removed. A crash in
// between leaves the entry (and at worst an orphan spool file, swept at start): the
// file is never lost, at worst replayed twice.
import { link } from 'node:fs/promises';
import { StevedoreError } from '../errors.js';
import { newTaskId, type TaskRecord } from '../queue/task.js';
import type { DeadEntry, DeadLetter } from './dead-letter.js';
import { fsyncDir } from './durable.js';
import type { Journal } from './journal.js';
import type { Spool } from './spool.js';

export interface ReplayDeps {
  spool: Spool;
  journal: Journal;
  deadLetter: DeadLetter;
}

export async function replay(entry: DeadEntry, { spool, journal, deadLetter }: ReplayDeps): Promise<TaskRecord> {
  if (!entry.record) {
    throw new StevedoreError('NOT_SUPPORTED', `dead-letter entry ${entry.id} was written by an older version without its task record; push its data with "stevedore push" instead`);
  }
  const record: TaskRecord = { ...entry.record, id: newTaskId(), createdAt: new Date().toISOString() };
  if (record.kind === 'put') {
    if (!entry.data) throw new StevedoreError('STAGED_MISSING', `dead-letter entry ${entry.id} has no data`);
    const staged = spool.newFile();
    // Both live under state_dir: a link is one metadata write, and the entry keeps its copy until the end.
    await link(entry.data, staged.path);
    await fsyncDir(spool.dir);
    record.staged = staged.name;
  }
  await journal.append({ op: 'add', task: record });
  await deadLetter.remove(entry.id);
  return record;
}
