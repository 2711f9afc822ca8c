// Drives the real scheduler with test targets: a registry that remembers every status
// a task went through, and a `settle` that records how each task ended.
import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import { createRegistry, type Registry } from '../../src/queue/registry.js';
import { createScheduler, type Scheduler, type SchedulerOptions, type Settlement } from '../../src/queue/scheduler.js';
import { newTask, newTaskId, type Task } from '../../src/task.js';
import type { Target } from '../../src/targets/target.js';

export const logger = pino({ level: 'silent' });

export interface Harness {
  scheduler: Scheduler;
  registry: Registry;
  /** How each task was settled, by id. */
  settled: Map<string, Settlement>;
  /** Every status each task went through, with the error code when there was one. */
  history: Map<string, string[]>;
  /** Where getTarget() looks; tests may add or remove targets on the fly. */
  targets: Map<string, Target>;
}

type Limits = Partial<Pick<SchedulerOptions, 'concurrency' | 'perTarget' | 'capacity' | 'batchFiles' | 'batchBytes'>> & {
  /** Runs inside settle() before it is recorded (e.g. to hold it). */
  onSettle?(task: Task, how: Settlement): Promise<void>;
};

export function harness(targets: Target[], { onSettle, ...limits }: Limits = {}): Harness {
  const base = createRegistry({ logger });
  const history = new Map<string, string[]>();
  const note = (task: Task) => {
    const list = history.get(task.id) ?? [];
    list.push(task.error ? `${task.status}:${task.error.code}` : task.status);
    history.set(task.id, list);
  };
  const registry: Registry = {
    ...base,
    add(task) {
      base.add(task);
      note(task);
    },
    update(task, change) {
      base.update(task, change);
      note(task);
    },
  };
  const settled = new Map<string, Settlement>();
  const byName = new Map(targets.map((t) => [t.name, t]));
  const scheduler = createScheduler({
    concurrency: 4,
    perTarget: 2,
    capacity: 1000,
    batchFiles: 100,
    batchBytes: 2 ** 30,
    ...limits,
    logger,
    registry,
    getTarget: (name) => byName.get(name),
    sourcePath: (task) => `/nonexistent/spool/${task.staged}`,
    async settle(task, how) {
      await onSettle?.(task, how);
      settled.set(task.id, how);
    },
  });
  onTestFinished(() => scheduler.close(0));
  return { scheduler, registry, settled, history, targets: byName };
}

export interface TaskSpec {
  target?: string;
  bytes?: number;
  attempts?: number;
  kind?: Task['kind'];
  /** When it was accepted (default: now). */
  createdAt?: Date;
}

export function makeTask(dest: string, { target = 'box', bytes = 1, attempts = 3, kind = 'put', createdAt = new Date() }: TaskSpec = {}): Task {
  const id = newTaskId();
  return newTask({
    id,
    kind,
    source: 'http',
    route: 'test',
    target,
    dest,
    bytes,
    sha256: '0'.repeat(64),
    staged: `${id}.staged`,
    createdAt: createdAt.toISOString(),
    options: { mode: 0o644, dirMode: 0o755, retry: { attempts, initialDelay: 1, maxDelay: 5 }, pushTimeout: 60_000 },
  });
}

export const isOver = (task: Task) => task.status === 'done' || task.status === 'failed';

/** Lets pending callbacks, I/O and timers of zero delay run. */
export const settleDown = async (rounds = 20) => {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setImmediate(resolve));
};
