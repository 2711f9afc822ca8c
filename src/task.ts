// A task is one file bound for one destination in one target. `TaskRecord` is what
// the journal keeps (enough to push again after a crash); `Task` adds live state.
import { randomSlice } from './random.js';

export type TaskStatus = 'queued' | 'pushing' | 'retrying' | 'done' | 'failed';
export type TaskSource = 'http' | 'watch' | 'cli';

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
    source: task.source,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
  };
}
