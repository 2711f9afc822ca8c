// A dead-letter entry goes back to work: its bytes are linked into the spool under a
// new name, a new task is journaled, and only then is the entry removed. A crash in
// between leaves the entry (and at worst an orphan spool file, swept at start): the
// file is never lost, at worst replayed twice.
import { link } from 'node:fs/promises';
import { StevedoreError, errorMessage, isStevedoreError } from '../errors.js';
import { newTaskId, type TaskRecord } from '../task.js';
import type { DeadEntry, DeadLetter } from './dead-letter.js';
import { fsyncDir } from '../durable.js';
import type { Journal } from './journal.js';
import type { Spool } from './spool.js';

export interface ReplayDeps {
  spool: Spool;
  journal: Journal;
  deadLetter: DeadLetter;
  /** Whether the running config has this target (a running agent's replay); without it, any goes. */
  known?(target: string): boolean;
}

export async function replay(entry: DeadEntry, { spool, journal, deadLetter, known }: ReplayDeps): Promise<TaskRecord> {
  if (!entry.record) {
    throw new StevedoreError('NOT_SUPPORTED', `dead-letter entry ${entry.id} was written by an older version without its task record; push its data with "stevedore push" instead`);
  }
  // Queued, it would wait for its target forever (and /readyz would say it is down).
  if (known && !known(entry.record.target)) {
    throw new StevedoreError('TARGET_UNKNOWN', `target "${entry.record.target}" is not configured: dead-letter entry ${entry.id} stays`);
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
  await deadLetter.remove(entry.id).catch((error: unknown) => {
    // Purged meanwhile: the task is journaled all the same, so it goes on.
    if (!isStevedoreError(error, 'NOT_FOUND')) throw error;
  });
  return record;
}

const PER_ENTRY = new Set(['NOT_SUPPORTED', 'STAGED_MISSING', 'NOT_FOUND', 'TARGET_UNKNOWN']);

export interface Replayed {
  /** Each new task, with the entry it came from. */
  tasks: { record: TaskRecord; from: string }[];
  /** Entries that could not go back (no record, no data), with why. */
  skipped: { id: string; reason: string }[];
}

/** Replays entries one by one; one that cannot go back does not stop the others. */
export async function replayAll(entries: readonly DeadEntry[], deps: ReplayDeps, onTask: (record: TaskRecord) => void): Promise<Replayed> {
  const result: Replayed = { tasks: [], skipped: [] };
  for (const entry of entries) {
    try {
      const record = await replay(entry, deps);
      onTask(record);
      result.tasks.push({ record, from: entry.id });
    } catch (error) {
      // What is wrong with this entry is said and skipped; a journal that cannot be written stops all.
      if (!isStevedoreError(error) || !PER_ENTRY.has(error.code)) throw error;
      result.skipped.push({ id: entry.id, reason: errorMessage(error) });
    }
  }
  return result;
}
