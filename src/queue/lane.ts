// One target's share of the queue: its tasks waiting, keyed by destination so that a
// newer file replaces an older one still waiting (newest wins); those waiting out a
// retry's backoff; the destinations being pushed (never two pushes to one at once); and
// whether the target is down. The scheduler owns the pool, the capacity and the
// bookkeeping; a lane decides what leaves next and what a failed push means.
import type { StevedoreError } from '../errors.js';
import { failureKind } from '../targets/target.js';
import type { Task } from '../task.js';
import { backoffDelay } from './backoff.js';
import { createNesting } from './nesting.js';

export interface LaneLimits {
  /** Batches into this target at once. */
  perTarget: number;
  batchFiles: number;
  batchBytes: number;
}

/** A target (or a fleet's member) as the queue sees it (GET /status). */
export interface TargetState {
  name: string;
  /** A fleet's member: its target and its container. */
  fleet?: { target: string; member: string };
  up: boolean;
  /** When it went down, or came up again after being down. */
  since?: string;
  lastError?: { code: string; message: string; at: string };
  queued: number;
  pushing: number;
}

/**
 * What a failed push means for its task: wait (the target, or the host, is down: its
 * attempt is given back and it waits for the target), retry (after its backoff, then
 * ready again), or fail (for good: dead-letter).
 */
export type Verdict = 'wait' | 'retry' | 'fail';

export interface Lane {
  readonly name: string;
  /** Queues `task`; answers the task replaced (an older one waiting, or `task` itself when it is older than one there) and by which. */
  add(task: Task): { replaced: Task; by: Task } | undefined;
  /** The task waiting for `dest` now, if any (a newer one that came during a push). */
  waiting(dest: string): Task | undefined;
  /** Takes `task` out if it waits (ready or to retry); false when it is being pushed or not here. */
  remove(task: Task): boolean;
  /** The target may be back (a fleet member started): its pause ends now. */
  wake(): void;
  /** The next batch to push at `now`, marked busy; empty when none may leave now. `othersPushing`: other lanes' batches are running. */
  take(now: number, othersPushing: boolean): Task[];
  /** A batch is over: its destinations are free again. */
  finished(tasks: readonly Task[]): void;
  /** A push landed: the target is up. */
  landed(): void;
  /** A push failed with `cause` (GET /status shows the last one). */
  failing(cause: StevedoreError): void;
  /** What a failed push (`cause`) means for `task`, the lane's own state updated already. */
  failed(task: Task, cause: StevedoreError): Verdict;
  /** Paused (down) until then, in ms since the epoch; 0 when not. */
  readonly downUntil: number;
  /** A batch that is not full gathers more files until then (see take); 0 when none does. */
  readonly gatherUntil: number;
  readonly ready: number;
  readonly down: boolean;
  state(): TargetState;
  close(): void;
}

// How long a batch that is not full waits for more files while other lanes push.
const LINGER_MS = 400;
const DOWN_BACKOFF = { initialDelay: 1000, maxDelay: 30_000 };
// Descriptors come back as the load passes, a spool as state_dir is mounted again: a
// host fault pauses the target as briefly as a full target would be retried.
const HOST_BACKOFF = { initialDelay: 500, maxDelay: 5000 };

/** `wake`: a task's retry backoff is over (it is ready again). `fleet`: the lane of a fleet's member. */
export function createLane(name: string, limits: LaneLimits, wake: () => void, fleet?: { target: string; member: string }): Lane {
  const ready = new Map<string, Task>();
  const retrying = new Map<string, { task: Task; timer: NodeJS.Timeout }>();
  const busy = new Map<string, Task>();
  const nesting = createNesting();
  // Gone from ready, retrying and busy: it no longer holds back the tasks nested with it.
  const leftUnlessWaiting = (task: Task) => {
    if (ready.get(task.dest) !== task && retrying.get(task.dest)?.task !== task) nesting.leave(task);
  };
  let running = 0;
  let downUntil = 0;
  let downStreak = 0;
  let since: string | undefined;
  let lastError: TargetState['lastError'];
  let gatherUntil = 0;

  // A push costs a fixed price (a runtime CLI process, ~50 ms of CPU, and as much again
  // in the runtime's daemon) before its first byte, so an idle target starts at once
  // with what is ready, but a second batch into a busy target starts only when it is
  // full: the rest gathers while the first runs. While other lanes push (a fleet's
  // members: the same files, each member's lane its own processes) an idle one gathers
  // for up to LINGER_MS too: started at once, the members' lanes cut ever smaller
  // batches (bench/fleet into 3 Incus members: 541 deliveries/s, 911 with the wait).
  function take(now: number, othersPushing: boolean): Task[] {
    if (running >= limits.perTarget || now < downUntil) return [];
    const batch: Task[] = [];
    let bytes = 0;
    let full = false;
    for (const task of ready.values()) {
      if (busy.has(task.dest) || nesting.mustWait(task)) continue;
      if (batch.length > 0 && (batch.length >= limits.batchFiles || bytes + task.bytes > limits.batchBytes)) {
        full = true;
        break;
      }
      batch.push(task);
      bytes += task.bytes;
    }
    // A batch at its byte bound (one big file) is full too: it need not wait.
    if (!full && batch.length < limits.batchFiles && bytes < limits.batchBytes) {
      if (running > 0) return [];
      if (othersPushing && batch.length > 0) {
        gatherUntil ||= now + LINGER_MS;
        if (now < gatherUntil) return [];
      }
    }
    gatherUntil = 0;
    running += batch.length > 0 ? 1 : 0;
    for (const task of batch) {
      ready.delete(task.dest);
      busy.set(task.dest, task);
    }
    return batch;
  }

  // One down push pauses the target once, however many files it carried: the streak
  // counts failed probes, not files (else a batch of 10 means 30 s at once).
  function pause(host: boolean): void {
    if (Date.now() < downUntil) return;
    if (downStreak === 0) since = new Date().toISOString();
    downStreak += 1;
    downUntil = Date.now() + backoffDelay(downStreak, host ? HOST_BACKOFF : DOWN_BACKOFF);
  }

  function retryLater(task: Task): void {
    const timer = setTimeout(() => {
      retrying.delete(task.dest);
      ready.set(task.dest, task);
      wake();
    }, backoffDelay(task.attempts, task.options.retry));
    retrying.set(task.dest, { task, timer });
  }

  return {
    name,
    add(task) {
      const waiting = ready.get(task.dest) ?? retrying.get(task.dest)?.task;
      // A version older than one waiting or being pushed (a retained one, for a member
      // catching up) is replaced at once: newest wins by when it was accepted.
      const newer = [waiting, busy.get(task.dest)].find((other) => other !== undefined && other !== task && other.createdAt > task.createdAt);
      if (newer) return { replaced: task, by: newer };
      clearTimeout(retrying.get(task.dest)?.timer);
      retrying.delete(task.dest);
      ready.set(task.dest, task);
      nesting.enter(task);
      if (waiting === undefined || waiting === task) return undefined;
      nesting.leave(waiting);
      return { replaced: waiting, by: task };
    },
    waiting: (dest) => ready.get(dest),
    remove(task) {
      const retry = retrying.get(task.dest);
      if (ready.get(task.dest) === task) ready.delete(task.dest);
      else if (retry?.task === task) {
        clearTimeout(retry.timer);
        retrying.delete(task.dest);
      } else return false;
      nesting.leave(task);
      return true;
    },
    wake() {
      downUntil = 0;
    },
    take,
    finished(tasks) {
      running -= 1;
      tasks.forEach((task) => {
        busy.delete(task.dest);
        leftUnlessWaiting(task);
      });
    },
    landed() {
      if (downStreak > 0) since = new Date().toISOString();
      downStreak = 0;
    },
    failing(cause) {
      lastError = { code: cause.code, message: cause.message, at: new Date().toISOString() };
    },
    failed(task, cause) {
      const kind = failureKind(cause);
      if (kind === 'down' || kind === 'host') {
        pause(kind === 'host');
        ready.set(task.dest, task);
        return 'wait';
      }
      if (kind === 'transient' && task.attempts < task.options.retry.attempts) {
        retryLater(task);
        return 'retry';
      }
      return 'fail';
    },
    get downUntil() {
      return downUntil;
    },
    get gatherUntil() {
      return gatherUntil;
    },
    get ready() {
      return ready.size;
    },
    get down() {
      return downStreak > 0;
    },
    state: () => ({
      name,
      ...(fleet ? { fleet } : {}),
      up: downStreak === 0,
      ...(since ? { since } : {}),
      ...(lastError ? { lastError } : {}),
      queued: ready.size + retrying.size,
      pushing: busy.size,
    }),
    close() {
      retrying.forEach(({ timer }) => clearTimeout(timer));
    },
  };
}
