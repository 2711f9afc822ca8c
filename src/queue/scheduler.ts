// The bounded queue. Tasks wait in one lane per target, and per member of a fleet
// (lane.ts: newest wins per destination, retries, down targets); ready tasks leave in
// batches, at most `concurrency` batches at once overall and `perTarget` per lane, on a
// fastq pool. A fleet's task waits as one delivery per member (fanout.ts). Capacity,
// the pool, and each task's end (journal, registry, metrics) are kept here.
import fastq from 'fastq';
import type { Logger } from 'pino';
import { StevedoreError } from '../errors.js';
import { failureKind, pushItems, type PushItem, type PushResult, type Target } from '../targets/target.js';
import type { Member, MembershipChange } from '../targets/fleet/types.js';
import type { DeliveryOutcome, Settlement, Task } from '../task.js';
import { createFanout } from './fanout.js';
import { createLane, type Lane, type TargetState } from './lane.js';
import type { Registry } from './registry.js';
import { withDeadline } from '../deadline.js';

export type { TargetState } from './lane.js';

export type { Settlement } from '../task.js';

export interface SchedulerOptions {
  concurrency: number;
  perTarget: number;
  capacity: number;
  batchFiles: number;
  batchBytes: number;
  logger: Logger;
  registry: Registry;
  /** A target's adapter; a fleet member's with `member`. */
  getTarget(name: string, member?: string): Target | undefined;
  /** A fleet's members now; undefined for a target that is one container or a directory. */
  fleet?(name: string): readonly Member[] | undefined;
  /** Host path of a task's staged file. */
  sourcePath(task: Task): string;
  /** Durable bookkeeping once a task is over (journal, spool, dead-letter). */
  settle(task: Task, how: Settlement): Promise<void>;
  /** Durable bookkeeping once one delivery of a fleet's task is over (`memberId`: the incarnation it was for). */
  settleDelivery?(child: Task, outcome: DeliveryOutcome, memberId: string | undefined): Promise<void>;
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
  /** One member's delivery of a fleet's task is over. */
  delivered?(child: Task, outcome: DeliveryOutcome): void;
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
  /** Every target (and fleet member) that has had a task since the start. */
  targetStates(): TargetState[];
  /** A fleet's members changed: deliveries for those that joined, none for those that left, a started one looked at again. */
  membersChanged(target: string, change: MembershipChange): void;
  /** Stops dispatching, lets running pushes finish for `graceMs`, then cancels them. */
  close(graceMs: number): Promise<void>;
}

interface Batch {
  lane: Lane;
  tasks: Task[];
}

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { concurrency, capacity, logger, registry } = options;
  const lanes = new Map<string, Lane>();
  const abort = new AbortController();
  const pool = fastq.promise(runBatch, concurrency);
  let size = 0;
  let reserved = 0;
  let active = 0;
  let closing = false;
  let wakeTimer: NodeJS.Timeout | undefined;
  const settling = new Set<Promise<void>>();

  const fanout = createFanout();
  const laneName = (task: Task) => (task.member === undefined ? task.target : `${task.target}/${task.member}`);
  const laneFor = (task: Task): Lane => {
    const name = laneName(task);
    let lane = lanes.get(name);
    if (!lane) {
      lane = createLane(name, options, () => pump(), task.member === undefined ? undefined : { target: task.target, member: task.member });
      lanes.set(name, lane);
    }
    return lane;
  };

  // A delivery's change shows in its fleet task's deliveries, and in the task's status.
  function update(task: Task, change: Parameters<Registry['update']>[1]): void {
    registry.update(task, change);
    const parent = fanout.parentOf(task);
    const status = fanout.follow(task);
    if (parent && status) registry.update(parent, { status, attempts: Math.max(...(parent.deliveries ?? []).map((d) => d.attempts), 0) });
  }

  function queue(task: Task): void {
    const superseded = laneFor(task).add(task);
    if (superseded) settle(superseded.replaced, 'superseded', superseded.by.id);
    pumpSoon();
  }

  // The end of a task is announced (GET /tasks, Prefer: wait) only once its bookkeeping
  // is durable: whoever sees `failed` finds the file in dead-letter, not still staged.
  // `warning`: done, but what ran after it (an exec) failed; shown as the task's error.
  function settle(task: Task, how: Settlement | 'gone', supersededBy?: string, warning?: StevedoreError): void {
    if (task.parent !== undefined) return settleDelivery(task, how === 'gone' ? 'gone' : how, supersededBy, warning);
    const end = how === 'gone' ? 'done' : how;
    const done = options
      .settle(task, end)
      .finally(() => {
        if (end === 'failed') registry.update(task, { status: 'failed', error: task.error });
        else {
          const error = warning ? { error: { code: warning.code, message: warning.message } } : {};
          registry.update(task, { status: 'done', ...(supersededBy ? { supersededBy } : {}), ...error });
        }
      })
      .catch((error: unknown) => logger.error({ taskId: task.id, target: task.target, dest: task.dest, err: error }, 'settling a task failed'))
      .finally(() => {
        size -= 1;
        settling.delete(done);
        options.observer?.settled(task, end);
      });
    settling.add(done);
  }

  // One member's delivery is over: journaled (or dead-lettered alone), then its fleet
  // task is over too if it was the last one.
  function settleDelivery(child: Task, outcome: DeliveryOutcome, supersededBy?: string, warning?: StevedoreError): void {
    const durable = options.settleDelivery?.(child, outcome, fanout.memberIdOf(child)) ?? Promise.resolve();
    const done = durable
      .catch((error: unknown) => logger.error({ taskId: child.id, parent: child.parent, container: child.member, err: error }, 'settling a delivery failed'))
      .finally(() => {
        const warned = warning ? { error: { code: warning.code, message: warning.message } } : {};
        if (outcome === 'failed') update(child, { status: 'failed', error: child.error });
        else update(child, { status: 'done', ...(supersededBy ? { supersededBy } : {}), ...warned });
        options.observer?.delivered?.(child, outcome);
        const ended = fanout.ended(child, outcome);
        if (ended) endFleetTask(ended.parent, ended.how);
        settling.delete(done);
      });
    settling.add(done);
  }

  function endFleetTask(parent: Task, how: Settlement): void {
    if (how === 'failed') {
      const failed = (parent.deliveries ?? []).filter((d) => d.status === 'failed');
      const first = failed[0]?.error;
      parent.error = { code: first?.code ?? 'TARGET_IO', message: `${failed.length} of ${parent.deliveries?.length ?? 0} members failed for good: ${failed.map((d) => `${d.container}: ${d.error?.message ?? 'failed'}`).join('; ')}` };
    }
    settle(parent, how);
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
        const tasks = lane.take(now, active > 0);
        if (tasks.length === 0) continue;
        started = true;
        active += 1;
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

  // A target marked down gets looked at again when its pause ends, one gathering a
  // batch when its time is up.
  function scheduleWake(now: number): void {
    clearTimeout(wakeTimer);
    const times = [...lanes.values()].flatMap((l) => (l.ready > 0 ? [l.downUntil, l.gatherUntil] : []));
    const next = Math.min(...times.filter((time) => time > now));
    if (Number.isFinite(next) && !closing) wakeTimer = setTimeout(pump, next - now).unref();
  }

  async function runBatch({ lane, tasks }: Batch): Promise<void> {
    try {
      if (toFleet(lane, tasks)) return;
      const started = performance.now();
      const results = await pushBatch(lane, tasks);
      options.observer?.pushed(tasks[0]?.target ?? lane.name, (performance.now() - started) / 1000, tasks.filter((_, i) => results[i]?.ok === true));
      tasks.forEach((task, i) => afterPush(lane, task, results[i] as PushResult));
    } finally {
      active -= 1;
      lane.finished(tasks);
      pump();
    }
  }

  // A fleet's task: one delivery per member it lacks, or its end when none is left to reach.
  function fan(task: Task, members: readonly Member[]): void {
    const { children, ended } = fanout.add(task, members);
    children.forEach(queueDelivery);
    if (ended) endFleetTask(ended.parent, ended.how);
  }

  // A target that became a fleet (a reload) while these tasks waited in its lane: they go
  // to its members now. Pushed as before, they found no adapter and waited forever.
  // The lane is no target any more: the rest of its tasks leave at once, and it goes once
  // empty (a lane left down would keep /readyz at 503).
  function toFleet(lane: Lane, tasks: readonly Task[]): boolean {
    const first = tasks[0];
    const members = first && first.member === undefined ? options.fleet?.(first.target) : undefined;
    if (members === undefined) return false;
    tasks.forEach((task) => fan(task, members));
    lane.wake();
    if (lane.state().queued === 0) lanes.delete(lane.name);
    return true;
  }

  async function pushBatch(lane: Lane, tasks: Task[]): Promise<PushResult[]> {
    // Counted before the target lookup: a 'down' answer takes the attempt back, also
    // for a target that is not configured (else attempts would go negative).
    tasks.forEach((task) => update(task, { status: 'pushing', attempts: task.attempts + 1 }));
    const first = tasks[0] as Task;
    const target = options.getTarget(first.target, first.member);
    if (!target) {
      const error = new StevedoreError('TARGET_DOWN', `target "${lane.name}" is not configured`);
      return tasks.map(() => ({ ok: false, error }));
    }
    const timeout = Math.max(...tasks.map((t) => t.options.pushTimeout));
    return withDeadline(abort.signal, timeout, (signal) => pushItems(target, tasks.map((task) => toItem(task, options.sourcePath)), signal));
  }

  function afterPush(lane: Lane, task: Task, result: PushResult): void {
    if (result.ok) {
      lane.landed();
      settle(task, 'done', undefined, result.warning);
      return;
    }
    const error = { code: result.error.code, message: result.error.message };
    lane.failing(result.error);
    const newer = lane.waiting(task.dest);
    if (closing) {
      // Cancelled by shutdown: the journal keeps it for the next start.
      update(task, { status: 'queued', attempts: task.attempts - 1, error });
    } else if (newer) {
      settle(task, 'superseded', newer.id);
    } else if (hasLeft(task)) {
      settle(task, 'gone');
    } else {
      retryOrFail(lane, task, result.error, error);
    }
  }

  function retryOrFail(lane: Lane, task: Task, cause: StevedoreError, error: { code: string; message: string }): void {
    const verdict = lane.failed(task, cause);
    if (verdict === 'fail') {
      const why = failureKind(cause) === 'permanent' ? error.message : `gave up after ${task.attempts} attempts: ${error.message}`;
      // Set quietly: settle() reads it for the dead-letter reason, then announces `failed`.
      task.error = { code: error.code, message: why };
      return settle(task, 'failed');
    }
    // Waiting for a target that is down gives its attempt back.
    update(task, { status: 'retrying', ...(verdict === 'wait' ? { attempts: task.attempts - 1 } : {}), error });
    options.observer?.retrying(task.target, cause.code);
  }

  // A delivery whose member is no longer in its fleet: nothing to retry, nothing to dead-letter.
  const hasLeft = (task: Task) => task.member !== undefined && !(options.fleet?.(task.target) ?? []).some((m) => m.name === task.member);

  function membersChanged(target: string, { joined, left, started }: MembershipChange): void {
    for (const name of left) {
      for (const child of fanout.childrenOf(target, name)) if (lanes.get(laneName(child))?.remove(child)) settle(child, 'gone');
    }
    for (const member of [...joined, ...started]) lanes.get(`${target}/${member.name}`)?.wake();
    fanout.joined(target, joined).forEach(queueDelivery);
    pumpSoon();
  }

  function queueDelivery(child: Task): void {
    registry.add(child);
    queue(child);
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
      const members = options.fleet?.(task.target);
      if (members === undefined) return queue(task);
      fan(task, members);
    },
    get size() {
      return size + reserved;
    },
    get inFlight() {
      return active;
    },
    downTargets: () => [...lanes.values()].filter((lane) => lane.down).map((lane) => lane.name),
    targetStates: () => [...lanes.values()].map((lane) => lane.state()),
    membersChanged,
    async close(graceMs) {
      closing = true;
      clearTimeout(wakeTimer);
      lanes.forEach((lane) => lane.close());
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
  return { op: 'put', ...base, source: sourcePath(task), bytes: task.bytes, mode, dirMode, owner, ...(task.source === 'watch' ? { unflushed: true } : {}) };
}
