// Mirror deletes (`delete: true`): a file or directory gone from the folder is removed in
// the container too, once it has stayed gone for `settle` and the folder is still the
// same one: `rm -r` of the watched directory itself first unlinks every file in it, and
// must not empty the container. One wait per path at a time: a writer creating and
// removing a name in a loop makes one look, not one per event.
import type { Logger } from 'pino';
import { errnoCode, isStevedoreError } from '../../errors.js';
import type { TaskOrigin } from '../../task.js';
import type { Accepted, Intake } from '../intake.js';
import { lstatBeneath, type WalkOptions } from './beneath.js';
import type { RootGuard } from './root.js';

export interface MirrorDeletes {
  /** `rel` went from the folder: its delete is queued if it stays gone. */
  gone(rel: string, dir: boolean): void;
  /**
   * Whether a put of `rel` waits: a delete settling or queued would remove what it lands
   * in (the file where its directory is now, the directory where it is now). Before that
   * delete, it met the old one in its way and failed for good; a put of the same path
   * queued while the delete waits would replace it (newest wins), so it waits until the
   * delete is over.
   */
  blocks(rel: string): boolean;
  /** The delete of `rel` is over (done, failed, or replaced). */
  over(rel: string): void;
  /** Queues the deletes of these files, those gone now (the last run pushed them, the start-up scan did not find them); resolves once they are accepted. */
  reconcile(rels: readonly string[]): Promise<void>;
  close(): void;
}

export interface DeletesOptions {
  watch: string;
  settleMs: number;
  guard: RootGuard;
  walk: WalkOptions;
  intake: Intake;
  log: Logger;
  /** The task for a file of the watch, without its staged file; undefined when its name cannot be a container path. */
  accepted(rel: string, origin: TaskOrigin): Omit<Accepted, 'received'> | undefined;
  /** The delete is queued: whatever version of `rel` was known is gone. */
  queued(rel: string): void;
}

const RETRY_MS = 1000;
const GONE = new Set(['ENOENT', 'ENOTDIR']);

export function createMirrorDeletes({ watch, settleMs, guard, walk, intake, log, accepted, queued }: DeletesOptions): MirrorDeletes {
  // Path → whether it was a directory: while it settles, (deciding) until its delete is
  // queued or found needless, and (queuedNow) until that delete is over.
  const settling = new Map<string, boolean>();
  const deciding = new Map<string, boolean>();
  const queuedNow = new Map<string, boolean>();
  const waits = (rel: string, dir: boolean) => deciding.get(rel) === dir || queuedNow.get(rel) === dir;
  let closed = false;

  async function queue(rel: string, dir: boolean): Promise<void> {
    const origin = { watch, path: rel, size: -1, mtimeMs: -1, ...(dir ? { dir } : {}) };
    const task = accepted(rel, origin);
    if (task === undefined || closed) return;
    try {
      await intake.admit(1);
    } catch {
      setTimeout(() => void queue(rel, dir), RETRY_MS).unref();
      return;
    }
    queued(rel);
    await intake.commit([task]).then(
      () => void queuedNow.set(rel, dir),
      (error: unknown) => {
        intake.release(1);
        log.error({ path: rel, err: error }, 'could not queue a mirrored delete');
      },
    );
  }

  async function settle(rel: string, dir: boolean): Promise<void> {
    settling.set(rel, dir);
    deciding.set(rel, dir);
    await new Promise((resolve) => setTimeout(resolve, settleMs).unref());
    settling.delete(rel);
    try {
      if (closed || (await guard.check()) !== 'same') return;
      if (await isGone(rel, dir)) await queue(rel, dir);
    } finally {
      if (!settling.has(rel)) deciding.delete(rel);
    }
  }

  // Not there, there as the other kind (a file where the directory was, or the other way
  // round: the container's must go for the new one to land), or there only through a
  // symlink that leads out. A path the agent may not look at now (a directory on its way
  // it may not read) is there for all it knows: a chmod must not empty it in the container.
  const isGone = (rel: string, dir = false) =>
    guard.use((held) => lstatBeneath(held, rel, walk)).then(
      (stats) => stats.isDirectory() !== dir,
      (error: unknown) => isStevedoreError(error, 'SOURCE_UNSAFE') || GONE.has(errnoCode(error) ?? ''),
    );

  return {
    gone(rel, dir) {
      if (!settling.has(rel)) void settle(rel, dir);
    },
    blocks(rel) {
      if (deciding.size === 0 && queuedNow.size === 0) return false;
      if (waits(rel, true)) return true;
      for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) if (waits(rel.slice(0, i), false)) return true;
      return false;
    },
    over: (rel) => void queuedNow.delete(rel),
    // Each through the highest directory on its way that went with it: a directory
    // removed or renamed while the agent was away goes from the container whole, not as
    // its files, which left it there empty.
    async reconcile(rels) {
      const dirs = new Set<string>();
      const present = new Set<string>();
      const deletes: Promise<void>[] = [];
      for (const rel of rels) {
        const parts = rel.split('/');
        const ancestors = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
        if (ancestors.some((dir) => dirs.has(dir)) || !(await isGone(rel))) continue;
        let top: string | undefined;
        for (const dir of ancestors) {
          if (present.has(dir)) continue;
          if (await isGone(dir, true)) {
            top = dir;
            break;
          }
          present.add(dir);
        }
        if (top !== undefined) dirs.add(top);
        deletes.push(queue(top ?? rel, top !== undefined));
      }
      await Promise.all(deletes);
    },
    close() {
      closed = true;
    },
  };
}
