// Every task the agent knows about, by id: the live ones, and the most recent finished
// ones so that GET /tasks/<id> still answers after a push. Each status change is logged
// here, once, as one JSON line with the task's context.
import type { Logger } from 'pino';
import { isFinished, type Task } from '../task.js';

export interface Registry {
  add(task: Task): void;
  get(id: string): Task | undefined;
  /** Applies a status change, logs it, and wakes whoever waits for the task to finish. */
  update(task: Task, change: Partial<Pick<Task, 'status' | 'attempts' | 'error' | 'supersededBy'>>): void;
  /** Resolves with the task once it is finished, or as it is after `ms`. */
  waitFor(id: string, ms: number): Promise<Task | undefined>;
  /** `scope`: the route's name, or a legacy rule's scope (Task.idempotencyScope). */
  findByIdempotencyKey(scope: string, key: string): Task | undefined;
  /** Wakes every waiter with the task as it is now (shutdown must not wait for them). */
  wakeAll(): void;
  /** The last `count` tasks that failed for good, newest first. */
  recentFailures(count: number): Task[];
  /** The last `count` tasks added, oldest first. */
  recent(count: number): Task[];
  /** Calls `listener` with every task added or changed; returns the unsubscribe. */
  subscribe(listener: (task: Task) => void): () => void;
}

export function createRegistry({ logger, keepFinished = 10_000 }: { logger: Logger; keepFinished?: number }): Registry {
  const tasks = new Map<string, Task>();
  const finished: string[] = [];
  const idempotency = new Map<string, string>();
  const waiters = new Map<string, Set<(task: Task) => void>>();
  const listeners = new Set<(task: Task) => void>();
  const tell = (task: Task) => listeners.forEach((listener) => listener(task));
  const keyOf = (scope: string, key: string) => `${scope}\0${key}`;
  const keyOfTask = (task: Task) => keyOf(task.idempotencyScope ?? task.route, task.idempotencyKey ?? '');

  const forgetOldest = () => {
    while (finished.length > keepFinished) {
      const task = tasks.get(finished.shift() ?? '');
      if (!task) continue;
      tasks.delete(task.id);
      if (task.idempotencyKey) idempotency.delete(keyOfTask(task));
    }
  };

  return {
    add(task) {
      tasks.set(task.id, task);
      if (task.idempotencyKey) idempotency.set(keyOfTask(task), task.id);
      logTask(logger, task);
      tell(task);
    },
    get: (id) => tasks.get(id),
    update(task, change) {
      Object.assign(task, change, { updatedAt: new Date().toISOString() });
      if (change.status !== 'retrying' && change.status !== 'failed') delete task.error;
      if (change.error) task.error = change.error;
      logTask(logger, task);
      tell(task);
      if (!isFinished(task)) return;
      finished.push(task.id);
      forgetOldest();
      waiters.get(task.id)?.forEach((wake) => wake(task));
      waiters.delete(task.id);
    },
    waitFor(id, ms) {
      const task = tasks.get(id);
      if (!task || isFinished(task) || ms <= 0) return Promise.resolve(task);
      return new Promise((resolve) => {
        const set = waiters.get(id) ?? new Set();
        waiters.set(id, set);
        const wake = (t: Task) => {
          clearTimeout(timer);
          set.delete(wake);
          resolve(t);
        };
        const timer = setTimeout(() => wake(task), ms).unref();
        set.add(wake);
      });
    },
    wakeAll() {
      for (const [id, set] of waiters) {
        const task = tasks.get(id);
        if (task) set.forEach((wake) => wake(task));
      }
      waiters.clear();
    },
    recentFailures(count) {
      const failed: Task[] = [];
      for (let i = finished.length - 1; i >= 0 && failed.length < count; i -= 1) {
        const task = tasks.get(finished[i] ?? '');
        if (task?.status === 'failed') failed.push(task);
      }
      return failed;
    },
    recent(count) {
      const all = [...tasks.values()];
      return all.slice(Math.max(0, all.length - count));
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    findByIdempotencyKey(scope, key) {
      const id = idempotency.get(keyOf(scope, key));
      return id === undefined ? undefined : tasks.get(id);
    },
  };
}

function logTask(logger: Logger, task: Task): void {
  const level = task.status === 'failed' ? 'error' : task.status === 'retrying' ? 'warn' : 'info';
  if (!logger.isLevelEnabled(level)) return;
  logger[level](
    {
      taskId: task.id,
      status: task.status,
      source: task.source,
      route: task.route,
      target: task.target,
      dest: task.dest,
      bytes: task.bytes,
      attempts: task.attempts,
      durationMs: Date.now() - Date.parse(task.createdAt),
      ...(task.error ? { error: task.error } : {}),
      ...(task.supersededBy ? { supersededBy: task.supersededBy } : {}),
      ...(task.requestId ? { reqId: task.requestId } : {}),
      ...(task.member ? { container: task.member, parent: task.parent } : {}),
    },
    `task ${task.status}`,
  );
}
