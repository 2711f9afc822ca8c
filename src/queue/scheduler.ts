// The bounded queue. Tasks wait per target, keyed by destination so that a newer file
// for the same destination replaces an older one still waiting (newest wins) and two
// pushes to one destination never run at once. Ready tasks leave in batches, at most
// `concurrency` batches at once overall and `perTarget` per target, on a fastq pool.
import fastq from 'fastq';
import type { Logger } from 'pino';
import { StevedoreError } from '../errors.js';
import { failureKind, pushItems, type PushItem, type PushResult, type Target } from '../targets/target.js';
import { backoffDelay } from './backoff.js';
import type { Registry } from './registry.js';
import type { Task } from '../task.js';

export type Settlement = 'done' | 'failed' | 'superseded';

export interface SchedulerOptions {
  concurrency: number;
  perTarget: number;
  capacity: number;
  batchFiles: number;
  batchBytes: number;
  logger: Logger;
  registry: Registry;
  getTarget(name: string): Target | undefined;
  /** Host path of a task's staged file. */
  sourcePath(task: Task): string;
  /** Durable bookkeeping once a task is over (journal, spool, dead-letter). */
  settle(task: Task, how: Settlement): Promise<void>;
  /** Told what happens, for metrics. */
  observer?: SchedulerObserver;
}

export interface SchedulerObserver {
  /** A task is over, its bookkeeping done. */
  settled(task: Task, how: Settlement): void;
  /** One push of a batch into a target, and what landed of it. */
  pushed(target: string, seconds: number, landed: readonly Task[]): void;
  /** A task goes back to wait: `code` says why (TARGET_DOWN when the target is down). */
  retrying(target: string, code: string): void;
}

/** A target as the queue sees it (GET /status). */
export interface TargetState {
  name: string;
  up: boolean;
  /** When it went down, or came up again after being down. */
  since?: string;
  lastError?: { code: string; message: string; at: string };
  queued: number;
  pushing: number;
}

export interface Scheduler {
  /** Holds room for `count` tasks about to be accepted; false when the queue is full. */
  reserve(count: number): boolean;
  release(count: number): void;
  /** Queues a task; `reserved` spends a slot taken with reserve(). */
  enqueue(task: Task, reserved?: boolean): void;
  /** Tasks accepted and not yet settled (queued, waiting to retry, pushing). */
  readonly size: number;
  readonly inFlight: number;
  /** Targets whose last push found them unreachable. */
  downTargets(): string[];
  /** Every target that has had a task since the start. */
  targetStates(): TargetState[];
  /** Stops dispatching, lets running pushes finish for `graceMs`, then cancels them. */
  close(graceMs: number): Promise<void>;
}

interface Lane {
  name: string;
  ready: Map<string, Task>;
  retrying: Map<string, { task: Task; timer: NodeJS.Timeout }>;
  busy: Set<string>;
  running: number;
  downUntil: number;
  downStreak: number;
  since?: string;
  lastError?: TargetState['lastError'];
}

interface Batch {
  lane: Lane;
  tasks: Task[];
}

const DOWN_BACKOFF = { initialDelay: 1000, maxDelay: 30_000 };
// Descriptors come back as the load passes, a spool as state_dir is mounted again: a
// host fault pauses the target as briefly as a full target would be retried.
const HOST_BACKOFF = { initialDelay: 500, maxDelay: 5000 };

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { concurrency, perTarget, capacity, logger, registry } = options;
  const lanes = new Map<string, Lane>();
  const abort = new AbortController();
  const pool = fastq.promise(runBatch, concurrency);
  let size = 0;
  let reserved = 0;
  let active = 0;
  let closing = false;
  let wakeTimer: NodeJS.Timeout | undefined;
  const settling = new Set<Promise<void>>();

  const laneFor = (name: string): Lane => {
    let lane = lanes.get(name);
    if (!lane) {
      lane = { name, ready: new Map(), retrying: new Map(), busy: new Set(), running: 0, downUntil: 0, downStreak: 0 };
      lanes.set(name, lane);
    }
    return lane;
  };

  // The end of a task is announced (GET /tasks, Prefer: wait) only once its bookkeeping
  // is durable: whoever sees `failed` finds the file in dead-letter, not still staged.
  // `warning`: done, but what ran after it (an exec) failed; shown as the task's error.
  function settle(task: Task, how: Settlement, supersededBy?: string, warning?: StevedoreError): void {
    const done = options
      .settle(task, how)
      .finally(() => {
        if (how === 'failed') registry.update(task, { status: 'failed', error: task.error });
        else {
          const error = warning ? { error: { code: warning.code, message: warning.message } } : {};
          registry.update(task, { status: 'done', ...(supersededBy ? { supersededBy } : {}), ...error });
        }
      })
      .catch((error: unknown) => logger.error({ taskId: task.id, target: task.target, dest: task.dest, err: error }, 'settling a task failed'))
      .finally(() => {
        size -= 1;
        settling.delete(done);
        options.observer?.settled(task, how);
      });
    settling.add(done);
  }

  // Replaces whatever still waits for this destination with `task`.
  function supersede(lane: Lane, task: Task): void {
    const older = lane.ready.get(task.dest) ?? lane.retrying.get(task.dest)?.task;
    if (!older || older === task) return;
    clearTimeout(lane.retrying.get(task.dest)?.timer);
    lane.retrying.delete(task.dest);
    lane.ready.delete(task.dest);
    settle(older, 'superseded', task.id);
  }

  // A push costs a fixed price (a runtime CLI process, ~50 ms of CPU) before its first
  // byte, so an idle target starts at once with what is ready, but a second batch into
  // a busy target starts only when it is full: the rest gathers while the first runs.
  function takeBatch(lane: Lane, now: number): Task[] {
    if (lane.running >= perTarget || now < lane.downUntil) return [];
    const batch: Task[] = [];
    let bytes = 0;
    let full = false;
    for (const task of lane.ready.values()) {
      if (lane.busy.has(task.dest)) continue;
      if (batch.length > 0 && (batch.length >= options.batchFiles || bytes + task.bytes > options.batchBytes)) {
        full = true;
        break;
      }
      batch.push(task);
      bytes += task.bytes;
    }
    // A batch at its byte bound (one big file) is full too: it need not wait.
    return lane.running > 0 && !full && batch.length < options.batchFiles && bytes < options.batchBytes ? [] : batch;
  }

  // Starts as many batches as the limits allow, visiting targets in turn. One `now`
  // for the whole pass: a lane found paused must also be found paused by
  // scheduleWake(), or a clock tick in between would leave it with no wake-up at all.
  function pump(): void {
    const now = Date.now();
    let started = true;
    while (!closing && started && active < concurrency) {
      started = false;
      for (const lane of lanes.values()) {
        if (active >= concurrency) break;
        const tasks = takeBatch(lane, now);
        if (tasks.length === 0) continue;
        started = true;
        active += 1;
        lane.running += 1;
        for (const task of tasks) {
          lane.ready.delete(task.dest);
          lane.busy.add(task.dest);
        }
        pool.push({ lane, tasks }).catch((error: unknown) => logger.error({ err: error, target: lane.name }, 'batch crashed'));
      }
    }
    scheduleWake(now);
  }

  // Tasks queued in the same tick (the parts of a multipart request, the files of one
  // commit) leave in one batch: the pump runs once they are all in.
  let pumpQueued = false;
  function pumpSoon(): void {
    if (pumpQueued) return;
    pumpQueued = true;
    queueMicrotask(() => {
      pumpQueued = false;
      pump();
    });
  }

  // A target marked down gets looked at again when its pause ends.
  function scheduleWake(now: number): void {
    clearTimeout(wakeTimer);
    const next = Math.min(...[...lanes.values()].filter((l) => l.downUntil > now && l.ready.size > 0).map((l) => l.downUntil));
    if (Number.isFinite(next) && !closing) wakeTimer = setTimeout(pump, next - now).unref();
  }

  async function runBatch({ lane, tasks }: Batch): Promise<void> {
    try {
      const started = performance.now();
      const results = await pushBatch(lane, tasks);
      options.observer?.pushed(lane.name, (performance.now() - started) / 1000, tasks.filter((_, i) => results[i]?.ok === true));
      tasks.forEach((task, i) => afterPush(lane, task, results[i] as PushResult));
    } finally {
      active -= 1;
      lane.running -= 1;
      tasks.forEach((task) => lane.busy.delete(task.dest));
      pump();
    }
  }

  async function pushBatch(lane: Lane, tasks: Task[]): Promise<PushResult[]> {
    // Counted before the target lookup: a 'down' answer takes the attempt back, also
    // for a target that is not configured (else attempts would go negative).
    tasks.forEach((task) => registry.update(task, { status: 'pushing', attempts: task.attempts + 1 }));
    const target = options.getTarget(lane.name);
    if (!target) {
      const error = new StevedoreError('TARGET_DOWN', `target "${lane.name}" is not configured`);
      return tasks.map(() => ({ ok: false, error }));
    }
    const timeout = Math.max(...tasks.map((t) => t.options.pushTimeout));
    const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(timeout)]);
    return pushItems(target, tasks.map((task) => toItem(task, options.sourcePath)), signal);
  }

  function afterPush(lane: Lane, task: Task, result: PushResult): void {
    if (result.ok) {
      if (lane.downStreak > 0) lane.since = new Date().toISOString();
      lane.downStreak = 0;
      settle(task, 'done', undefined, result.warning);
      return;
    }
    const error = { code: result.error.code, message: result.error.message };
    lane.lastError = { ...error, at: new Date().toISOString() };
    if (closing) {
      // Cancelled by shutdown: the journal keeps it for the next start.
      registry.update(task, { status: 'queued', attempts: task.attempts - 1, error });
    } else if (lane.ready.has(task.dest)) {
      settle(task, 'superseded', lane.ready.get(task.dest)?.id);
    } else {
      retryOrFail(lane, task, result.error, error);
    }
  }

  function retryOrFail(lane: Lane, task: Task, cause: StevedoreError, error: { code: string; message: string }): void {
    const kind = failureKind(cause);
    if (kind === 'down' || kind === 'host') {
      // One down push pauses the target once, however many files it carried: the
      // streak counts failed probes, not files (else a batch of 10 means 30 s at once).
      if (Date.now() >= lane.downUntil) {
        if (lane.downStreak === 0) lane.since = new Date().toISOString();
        lane.downStreak += 1;
        lane.downUntil = Date.now() + backoffDelay(lane.downStreak, kind === 'host' ? HOST_BACKOFF : DOWN_BACKOFF);
      }
      registry.update(task, { status: 'retrying', attempts: task.attempts - 1, error });
      options.observer?.retrying(lane.name, cause.code);
      lane.ready.set(task.dest, task);
    } else if (kind === 'transient' && task.attempts < task.options.retry.attempts) {
      registry.update(task, { status: 'retrying', error });
      options.observer?.retrying(lane.name, cause.code);
      const timer = setTimeout(() => {
        lane.retrying.delete(task.dest);
        lane.ready.set(task.dest, task);
        pump();
      }, backoffDelay(task.attempts, task.options.retry));
      lane.retrying.set(task.dest, { task, timer });
    } else {
      const why = kind === 'permanent' ? error.message : `gave up after ${task.attempts} attempts: ${error.message}`;
      // Set quietly: settle() reads it for the dead-letter reason, then announces `failed`.
      task.error = { code: error.code, message: why };
      settle(task, 'failed');
    }
  }

  return {
    reserve(count) {
      if (closing || size + reserved + count > capacity) return false;
      reserved += count;
      return true;
    },
    release(count) {
      reserved = Math.max(0, reserved - count);
    },
    enqueue(task, fromReservation = false) {
      if (fromReservation) reserved = Math.max(0, reserved - 1);
      size += 1;
      registry.add(task);
      const lane = laneFor(task.target);
      supersede(lane, task);
      lane.ready.set(task.dest, task);
      pumpSoon();
    },
    get size() {
      return size + reserved;
    },
    get inFlight() {
      return active;
    },
    downTargets: () => [...lanes.values()].filter((lane) => lane.downStreak > 0).map((lane) => lane.name),
    targetStates: () =>
      [...lanes.values()].map((lane) => ({
        name: lane.name,
        up: lane.downStreak === 0,
        ...(lane.since ? { since: lane.since } : {}),
        ...(lane.lastError ? { lastError: lane.lastError } : {}),
        queued: lane.ready.size + lane.retrying.size,
        pushing: lane.busy.size,
      })),
    async close(graceMs) {
      closing = true;
      clearTimeout(wakeTimer);
      for (const lane of lanes.values()) lane.retrying.forEach(({ timer }) => clearTimeout(timer));
      const grace = setTimeout(() => abort.abort(new StevedoreError('SHUTTING_DOWN', 'shutdown grace period over')), graceMs);
      await pool.drained();
      clearTimeout(grace);
      await Promise.all(settling);
    },
  };
}

function toItem(task: Task, sourcePath: (task: Task) => string): PushItem {
  const { mode, dirMode, owner, exec, root } = task.options;
  const base = { id: task.id, dest: task.dest, ...(exec ? { exec } : {}), ...(root ? { root } : {}) };
  if (task.kind === 'delete') return { op: 'delete', ...base };
  return { op: 'put', ...base, source: sourcePath(task), bytes: task.bytes, mode, dirMode, owner };
}
