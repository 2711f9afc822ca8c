// A task is one file bound for one destination in one target. `TaskRecord` is what
// the journal keeps (enough to push again after a crash); `Task` adds live state.
import { randomSlice } from './random.js';

export type TaskStatus = 'queued' | 'pushing' | 'retrying' | 'done' | 'failed';
/** How a task ended: pushed, failed for good (dead-letter), or replaced by a newer one first. */
export type Settlement = 'done' | 'failed' | 'superseded';
/** http, watch, cli: how the file came; retain: a retained version, for a fleet member catching up. */
export type TaskSource = 'http' | 'watch' | 'cli' | 'retain';

export interface RetryPolicy {
  attempts: number;
  initialDelay: number;
  maxDelay: number;
}

/** How the file lands: resolved from defaults and route/watch overrides when accepted. */
export interface FileOptions {
  mode: number;
  dirMode: number;
  owner?: { uid: number; gid: number };
  retry: RetryPolicy;
  pushTimeout: number;
  /** Run in the container after the batch that lands this file (route/watch `exec`). */
  exec?: string[];
  /** The route's, watch's or legacy rule's dest: the file may not land outside it through a symlink. */
  root?: string;
  /** Keep the newest version of its destination for a fleet's later members (a route's or drop watch's `retain`, a mirror on a fleet). */
  retain?: boolean;
}

/** Where a watched file came from, so that its host file can follow the push. */
export interface TaskOrigin {
  watch: string;
  /** Path relative to the watched directory. */
  path: string;
  size: number;
  mtimeMs: number;
  /**
   * The inode that was staged: only that one is removed or moved after the push
   * (absent from tasks journaled by older versions, and from deletes).
   */
  dev?: number;
  ino?: number;
  /** A mirrored directory delete (everything under `path`). */
  dir?: boolean;
}

export interface TaskRecord {
  id: string;
  /** put: land the staged file at dest; delete: remove dest (mirrored deletes). */
  kind: 'put' | 'delete';
  source: TaskSource;
  /** Route or watch name ("legacy" for POST /upload). */
  route: string;
  target: string;
  dest: string;
  bytes: number;
  sha256: string;
  /** File name inside the spool directory. */
  staged: string;
  createdAt: string;
  options: FileOptions;
  idempotencyKey?: string;
  /** The HTTP request that brought it (X-Request-Id, or one the agent made): in its log lines. */
  requestId?: string;
  /**
   * Where `idempotencyKey` is unique when not the route: a legacy rule and its token
   * (legacyScope in ingest/legacy.ts). Kept in the journal, so keys outlive a restart.
   */
  idempotencyScope?: string;
  origin?: TaskOrigin;
  /** A fleet's task for these members only (a member catching up, a dead-lettered delivery replayed). */
  members?: string[];
  /** A fleet's deliveries that ended (journal `delivered` lines): not pushed to those again. */
  delivered?: DeliveryRecord[];
  /** One delivery of a fleet's task: the member it goes to, and the task it is part of. Never journaled as an `add`. */
  member?: string;
  parent?: string;
  /** Its bytes are a retained version (state_dir/retain, by this sha256), not a staged file: a member catching up. Not journaled. */
  retained?: boolean;
}

/** How one member's delivery ended. `gone`: the member left the fleet first. */
export type DeliveryOutcome = 'done' | 'failed' | 'superseded' | 'gone';

export interface DeliveryRecord {
  container: string;
  /** The member's incarnation (container id, volatile.uuid) it reached: a re-created member gets it again. */
  memberId?: string;
  outcome: DeliveryOutcome;
}

/** A fleet task's delivery to one member, as GET /tasks shows it. */
export interface Delivery {
  container: string;
  status: TaskStatus | 'superseded' | 'gone';
  attempts: number;
  error?: TaskError;
}

export interface TaskError {
  code: string;
  message: string;
}

export interface Task extends TaskRecord {
  status: TaskStatus;
  attempts: number;
  updatedAt: string;
  error?: TaskError;
  /** Set when a newer task for the same destination replaced this one before it was pushed. */
  supersededBy?: string;
  /** A fleet's task: one delivery per member (SPEC §7). */
  deliveries?: Delivery[];
}

// Sortable by creation time, unguessable: 6 bytes of time, 10 of randomness.
export function newTaskId(now = Date.now()): string {
  const time = Buffer.alloc(6);
  time.writeUIntBE(now, 0, 6);
  return Buffer.concat([time, randomSlice(10)]).toString('base64url');
}

export const TASK_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

export function newTask(record: TaskRecord): Task {
  return { ...record, status: 'queued', attempts: 0, updatedAt: record.createdAt };
}

export const isFinished = (task: Task) => task.status === 'done' || task.status === 'failed';

/** The task JSON of SPEC §3. */
export function taskJson(task: Task): Record<string, unknown> {
  return {
    id: task.id,
    ...(task.kind === 'delete' ? { kind: 'delete' } : {}),
    route: task.route,
    target: task.target,
    dest: task.dest,
    bytes: task.bytes,
    sha256: task.sha256,
    status: task.status,
    attempts: task.attempts,
    ...(task.error ? { error: task.error } : {}),
    ...(task.supersededBy ? { superseded_by: task.supersededBy } : {}),
    ...(task.deliveries ? { deliveries: task.deliveries.map(({ container, status, attempts, error }) => ({ container, status, attempts, ...(error ? { error } : {}) })) } : {}),
    ...(task.member ? { container: task.member, parent: task.parent } : {}),
    source: task.source,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
  };
}
