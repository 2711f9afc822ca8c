// What every ingest path (HTTP, watched folders) does with a file: admit it before
// reading, stage it, then commit it — journal first, queue second — so that once
// commit() resolves the file survives a crash and will be pushed.
import type { Readable } from 'node:stream';
import { StevedoreError } from '../errors.js';
import type { Scheduler } from '../queue/scheduler.js';
import { newTask, newTaskId, type FileOptions, type Task, type TaskOrigin, type TaskSource } from '../task.js';
import type { Journal } from '../spool/journal.js';
import { checkFree, receive, spoolError, type ReceiveOptions, type Received, type Staging } from '../spool/receive.js';
import type { Spool } from '../spool/spool.js';
import type { StateDir } from '../spool/state-dir.js';

export interface Accepted {
  /** The task's id when it was announced before the body ended; a new one otherwise. */
  id?: string;
  /** The staged file; none for a delete (a mirrored host delete). */
  received?: Received;
  source: TaskSource;
  route: string;
  target: string;
  dest: string;
  options: FileOptions;
  idempotencyKey?: string;
  /** The HTTP request that brought it (X-Request-Id, or one the agent made): in its log lines. */
  requestId?: string;
  origin?: TaskOrigin;
}

/** What admit() holds besides queue slots: the bytes about to be written. */
export interface Admission {
  /** `bytes` of it are written so far: the disk counts those now, so they are held no more. */
  written(bytes: number): void;
  /** The file is written (the disk counts it now) or never will be: stop holding its bytes. Idempotent. */
  done(): void;
}

export interface Intake {
  /**
   * Takes `count` queue slots and holds `expectedBytes` of the spool's disk until
   * done(), or throws QUEUE_FULL / SHUTTING_DOWN / INSUFFICIENT_STORAGE.
   */
  admit(count: number, expectedBytes?: number): Promise<Admission>;
  release(count: number): void;
  /** Stages a body; `declared` is its Content-Length when known. */
  receive(body: Readable, options: Omit<ReceiveOptions, 'minFree'>, declared?: number): Promise<Received>;
  discard(received: Received): Promise<void>;
  /** Journals the files in one group commit, then queues them; spends their admitted slots. */
  commit(files: Accepted[]): Promise<Task[]>;
}

export interface IntakeOptions {
  spool: Spool;
  journal: Journal;
  /** Refuses files while state_dir is gone or cannot be written, and says so for what failed. */
  stateDir: Pick<StateDir, 'check' | 'explain'>;
  scheduler: Scheduler;
  minFree: number;
  isClosing(): boolean;
  /** Told of every task accepted (metrics). */
  onAccepted?(tasks: readonly Task[]): void;
  /** Before the accepted tasks are queued (their files are durable): keeps retained versions. Never rejects. */
  beforeQueue?(tasks: readonly Task[]): Promise<void>;
}

export function createIntake({ spool, journal, stateDir, scheduler, minFree, isClosing, onAccepted, beforeQueue }: IntakeOptions): Intake {
  const explained = async (error: unknown): Promise<never> => {
    throw await stateDir.explain(error);
  };
  // Without it, files admitted together (a folder of drops, a burst of uploads) each
  // fit the free space alone and crossed min_free together, up to a full disk.
  const staging: Staging = { bytes: 0 };
  return {
    async admit(count, expectedBytes = 0) {
      if (isClosing()) throw new StevedoreError('SHUTTING_DOWN', 'the agent is shutting down');
      await stateDir.check();
      if (!scheduler.reserve(count)) {
        throw new StevedoreError('QUEUE_FULL', 'the queue is at capacity; retry later', { details: { size: scheduler.size } });
      }
      try {
        await checkFree(spool, minFree, expectedBytes, staging);
      } catch (error) {
        scheduler.release(count);
        return explained(error);
      }
      let held = expectedBytes;
      const hold = (bytes: number) => {
        staging.bytes -= held - bytes;
        held = bytes;
      };
      return {
        written: (bytes) => hold(Math.min(held, Math.max(0, expectedBytes - bytes))),
        done: () => hold(0),
      };
    },
    release: (count) => scheduler.release(count),
    receive: (body, options, declared) => receive(spool, body, { ...options, minFree }, declared).catch(explained),
    async discard(received) {
      await received.durable.catch(() => undefined);
      await spool.remove(received.staged).catch(explained);
    },
    async commit(files) {
      const now = new Date().toISOString();
      const tasks = files.map(({ received, id, ...rest }) =>
        newTask({
          id: id ?? newTaskId(),
          kind: received ? 'put' : 'delete',
          ...rest,
          bytes: received?.bytes ?? 0,
          sha256: received?.sha256 ?? '',
          staged: received?.staged ?? '',
          createdAt: now,
        }),
      );
      const staged = files.flatMap((f) => (f.received ? [f.received] : []));
      const records = tasks.map((task) => ({ op: 'add' as const, task: recordOf(task) }));
      // The journal lines and the staged files' data reach the disk side by side.
      const [journaled, ...written] = await Promise.allSettled([journal.append(...records), ...staged.map((r) => r.durable)]);
      const failure = [journaled, ...written].find((r) => r.status === 'rejected');
      if (failure) {
        // If this cannot be written either, recovery finds the files missing and says so.
        if (journaled?.status === 'fulfilled') await journal.append(...tasks.map((t) => ({ op: 'discard' as const, id: t.id }))).catch(() => undefined);
        // One that cannot be removed now (state_dir read-only) is swept at the next start.
        await Promise.all(staged.map((r) => spool.remove(r.staged))).catch(() => undefined);
        return explained(spoolError(failure.reason));
      }
      await beforeQueue?.(tasks);
      tasks.forEach((task) => scheduler.enqueue(task, true));
      onAccepted?.(tasks);
      return tasks;
    },
  };
}

// The journal keeps the durable fields only, not live status.
function recordOf(task: Task) {
  const { status: _status, attempts: _attempts, updatedAt: _updatedAt, error: _error, supersededBy: _s, ...record } = task;
  return record;
}
