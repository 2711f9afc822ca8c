// Files that failed for good: state_dir/dead-letter/<task id>/ holds `data` (the staged
// file, moved, never copied), `task.json` (the task with its last error) and
// `reason.txt` (one line for a human).
import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { taskJson, type Task } from '../queue/task.js';
import { fsyncDir, writeFileDurable } from './durable.js';

export interface DeadLetter {
  readonly dir: string;
  init(): Promise<void>;
  /**
   * Moves the staged file in (none for a delete task) and writes the reason; after it
   * resolves, the file is safe here.
   */
  put(task: Task, stagedPath: string | undefined, reason: string): Promise<void>;
  /** True when `id` already has its data here (a crash between move and journal). */
  has(id: string): Promise<boolean>;
}

export function createDeadLetter(dir: string): DeadLetter {
  const entryDir = (id: string) => path.join(dir, id);
  return {
    dir,
    async init() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    },
    async put(task, stagedPath, reason) {
      const target = entryDir(task.id);
      await mkdir(target, { recursive: true, mode: 0o700 });
      if (stagedPath !== undefined) {
        await rename(stagedPath, path.join(target, 'data')).catch((error: unknown) => {
          if (errnoCode(error) !== 'ENOENT') throw error;
        });
      }
      await writeFileDurable(path.join(target, 'task.json'), `${JSON.stringify({ ...taskJson(task), reason }, null, 2)}\n`);
      await writeFileDurable(path.join(target, 'reason.txt'), `${reason}\n`);
      await fsyncDir(dir);
    },
    async has(id) {
      return stat(path.join(entryDir(id), 'data')).then(
        () => true,
        () => false,
      );
    },
  };
}
