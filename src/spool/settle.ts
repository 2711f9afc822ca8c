import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { errnoCode, errorMessage, isStevedoreError } from '../errors.js';
import type { DeliveryOutcome, Task } from '../task.js';
import type { DeadLetter } from './dead-letter.js';
import type { Journal } from './journal.js';
import type { Spool } from './spool.js';
import type { StateDir } from './state-dir.js';

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
async function settleTask(task: Task, how: 'done' | 'failed' | 'superseded', { journal, spool, deadLetter }: SettleArgs): Promise<void> {
  // A member catching up from a retained version: nothing journaled, nothing staged.
  if (task.retained) return;
  // A fleet's task: a delivery that failed has its own dead-letter entry already.
  if (how === 'failed' && task.deliveries === undefined) {
    // The scheduler announces `failed` only after this, but task.json must say it already.
    await deadLetter.put({ ...task, status: 'failed' }, task.kind === 'put' ? spool.path(task.staged) : undefined, task.error?.message ?? 'failed');
    await journal.append({ op: 'dead', id: task.id });
    return;
  }
  await journal.append({ op: 'done', id: task.id });
  if (task.kind === 'put') await spool.remove(task.staged);
}

/**
 * The durable end of one delivery of a fleet's task: journaled (the task stays live for
 * its other members), or, failed for good, dead-lettered alone with a link to the file,
 * as a task for that member only (a replay reaches it alone).
 */
export async function settleDelivery(child: Task, outcome: DeliveryOutcome, memberId: string | undefined, { journal, deadLetter }: SettleArgs, source: string): Promise<void> {
  if (outcome === 'failed') {
    const { member, parent: _parent, retained: _retained, delivered: _delivered, ...rest } = child;
    const alone: Task = { ...rest, status: 'failed', members: [member as string] };
    await deadLetter.put(alone, child.kind === 'put' ? source : undefined, child.error?.message ?? 'failed', { keep: true });
  }
  if (child.retained || child.parent === undefined) return;
  await journal.append({ op: 'delivered', id: child.parent, container: child.member as string, ...(memberId ? { memberId } : {}), outcome });
}

export interface SettlementOptions extends SettleArgs {
  /** Tells a failure of state_dir itself (gone, read-only): waited out too. */
  stateDir: Pick<StateDir, 'explain'>;
  logger: Logger;
  /** Aborted when the agent stops: a task still waiting stays live in the journal. */
  signal: AbortSignal;
  retryMs?: number;
}

/** What the host gives back in time: disk space, file descriptors. */
const WAIT_FOR = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE']);

/**
 * settleTask, waiting out a full disk, a lack of file descriptors, or a state_dir gone
 * or read-only: the push is over, only its journal line (or dead-letter entry) cannot
 * be written yet. Before, such a task was left half-settled until a restart: staged,
 * live in the journal, its dropped host file kept. Retried every second, said once
 * when the wait starts and once when it ends; given up when the agent stops (the next
 * start pushes the file again).
 */
export function createSettlement({ stateDir, logger, signal, retryMs = 1000, ...args }: SettlementOptions): (task: Task, how: 'done' | 'failed' | 'superseded') => Promise<void> {
  const waitable = async (error: unknown) => WAIT_FOR.has(errnoCode(error) ?? '') || isStevedoreError(await stateDir.explain(error), 'SPOOL_UNAVAILABLE');
  let waiting = 0;
  // One timer for every task that waits: they retry together, in one journal write.
  let tick: Promise<void> | undefined;
  const nextTry = () =>
    (tick ??= sleep(retryMs, undefined, { signal }).then(
      () => void (tick = undefined),
      () => void (tick = undefined),
    ));
  return async (task, how) => {
    let waited = false;
    try {
      for (;;) {
        try {
          return await settleTask(task, how, args);
        } catch (error) {
          if (signal.aborted || !(await waitable(error))) throw error;
          if (!waited && (waiting += 1) === 1) {
            logger.warn({ code: errnoCode(error), taskId: task.id }, `cannot record the end of finished tasks (${errorMessage(error)}); their files stay staged, retrying every ${retryMs} ms`);
          }
          waited = true;
          await nextTry();
        }
      }
    } finally {
      if (waited && (waiting -= 1) === 0 && !signal.aborted) logger.info('recorded the end of the tasks that waited');
    }
  };
}
