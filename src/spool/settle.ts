import type { Task } from '../queue/task.js';
import type { DeadLetter } from './dead-letter.js';
import type { Journal } from './journal.js';
import type { Spool } from './spool.js';

export interface SettleArgs {
  journal: Journal;
  spool: Spool;
  deadLetter: DeadLetter;
}

/**
 * The durable end of a task. The staged file goes only after the journal says the
 * task is over: a crash in between leaves an orphan that the next start sweeps, never
 * a task without data.
 */
export async function settleTask(task: Task, how: 'done' | 'failed' | 'superseded', { journal, spool, deadLetter }: SettleArgs): Promise<void> {
  if (how === 'failed') {
    // The scheduler announces `failed` only after this, but task.json must say it already.
    await deadLetter.put({ ...task, status: 'failed' }, task.kind === 'put' ? spool.path(task.staged) : undefined, task.error?.message ?? 'failed');
    await journal.append({ op: 'dead', id: task.id });
    return;
  }
  await journal.append({ op: 'done', id: task.id });
  if (task.kind === 'put') await spool.remove(task.staged);
}
