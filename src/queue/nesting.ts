// A lane keeps one push per exact destination at a time; this keeps the order between a
// destination and the ones nested in it (a directory and a file under it) when either
// task is a delete. Without it a mirror's delete of /d, waiting out a retry, was pushed
// after a later put of /d/new had landed, and removed it (its task done, the file gone).
// The older of two nested tasks leaves first, so there is always one that may leave.
import path from 'node:path';
import type { Task } from '../task.js';

export interface Nesting {
  /** `task` is in the lane (waiting, retrying or being pushed); idempotent. */
  enter(task: Task): void;
  /** `task` left the lane; idempotent. */
  leave(task: Task): void;
  /** An older task nested with `task`, one of them a delete, is still in the lane. */
  mustWait(task: Task): boolean;
}

// Accepted first; in the same millisecond, a delete before a put (as a batch runs them).
const before = (a: Task, b: Task) => a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.kind === 'delete' && b.kind !== 'delete');

function* ancestors(dest: string): Generator<string> {
  for (let dir = path.posix.dirname(dest); ; dir = path.posix.dirname(dir)) {
    yield dir;
    if (dir === '/' || dir === '.') return;
  }
}

export function createNesting(): Nesting {
  const members = new Set<Task>();
  const at = new Map<string, Set<Task>>(); // dest → tasks there
  const under = new Map<string, Set<Task>>(); // directory → tasks anywhere below it
  let deletes = 0;
  const put = (map: Map<string, Set<Task>>, key: string, task: Task) => {
    const set = map.get(key) ?? new Set<Task>();
    map.set(key, set.add(task));
  };
  const drop = (map: Map<string, Set<Task>>, key: string, task: Task) => {
    const set = map.get(key);
    if (set?.delete(task) && set.size === 0) map.delete(key);
  };

  return {
    enter(task) {
      if (members.has(task)) return;
      members.add(task);
      deletes += task.kind === 'delete' ? 1 : 0;
      put(at, task.dest, task);
      for (const dir of ancestors(task.dest)) put(under, dir, task);
    },
    leave(task) {
      if (!members.delete(task)) return;
      deletes -= task.kind === 'delete' ? 1 : 0;
      drop(at, task.dest, task);
      for (const dir of ancestors(task.dest)) drop(under, dir, task);
    },
    mustWait(task) {
      if (deletes === 0) return false;
      for (const dir of ancestors(task.dest)) {
        for (const other of at.get(dir) ?? []) if ((task.kind === 'delete' || other.kind === 'delete') && before(other, task)) return true;
      }
      // Below a put, an older delete changes nothing the put makes: only a delete waits here.
      if (task.kind !== 'delete') return false;
      for (const other of under.get(task.dest) ?? []) if (before(other, task)) return true;
      return false;
    },
  };
}
