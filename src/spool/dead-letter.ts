// Files that failed for good: state_dir/dead-letter/<task id>/ holds `data` (the staged
// file, moved, never copied), `task.json` (the task JSON with its last error, its reason
// and the full journal record, so that it can be replayed) and `reason.txt` (one line
// for a human).
import { copyFile, link, mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { StevedoreError, errnoCode } from '../errors.js';
import { TASK_ID_PATTERN, taskJson, type Task, type TaskRecord } from '../task.js';
import { fsyncDir, makeDir, writeFileDurable } from '../durable.js';

export interface DeadEntry {
  id: string;
  target: string;
  route: string;
  dest: string;
  bytes: number;
  reason: string;
  failedAt: string;
  /** The journal record, for a replay (absent in entries written before replays existed). */
  record?: TaskRecord;
  /** Host path of the file's bytes, when it has any (a delete task has none). */
  data?: string;
}

/** An entry as GET /dead-letter lists it (and `stevedore dead-letter list` reads it). */
export const deadEntryJson = ({ record: _record, data, failedAt, ...entry }: DeadEntry) => ({ ...entry, failed_at: failedAt, has_data: data !== undefined });

export type DeadEntryJson = ReturnType<typeof deadEntryJson>;

export interface DeadLetter {
  readonly dir: string;
  init(): Promise<void>;
  /**
   * Moves the staged file in (none for a delete task) and writes the reason; after it
   * resolves, the file is safe here.
   */
  put(task: Task, stagedPath: string | undefined, reason: string, how?: { keep?: boolean }): Promise<void>;
  /** True when `id` already has its data here (a crash between move and journal). */
  has(id: string): Promise<boolean>;
  /** Every entry, oldest first. */
  list(): Promise<DeadEntry[]>;
  /** One entry; NOT_FOUND when there is none. */
  get(id: string): Promise<DeadEntry>;
  /** Deletes one entry and its data. */
  remove(id: string): Promise<void>;
  /** Writes task.json for an entry that has its data but lost the rest to a crash (else it could not be listed or replayed). */
  repair(task: Task, reason: string): Promise<void>;
}

export function createDeadLetter(dir: string): DeadLetter {
  const entryDir = (id: string) => path.join(dir, id);
  const store: DeadLetter = {
    dir,
    async init() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    },
    async put(task, stagedPath, reason, { keep = false } = {}) {
      const target = entryDir(task.id);
      await makeDir(target);
      if (stagedPath !== undefined) {
        // `keep`: the file stays where it is (a fleet's other members still need it): linked in.
        await (keep ? linkIn(stagedPath, path.join(target, 'data')) : rename(stagedPath, path.join(target, 'data'))).catch((error: unknown) => {
          if (errnoCode(error) !== 'ENOENT') throw error;
        });
      }
      const { status: _status, attempts: _attempts, updatedAt: _updated, error: _error, supersededBy: _by, ...record } = task;
      const json = { ...taskJson(task), reason, record };
      await writeFileDurable(path.join(target, 'task.json'), `${JSON.stringify(json, null, 2)}\n`);
      await writeFileDurable(path.join(target, 'reason.txt'), `${reason}\n`);
      await fsyncDir(dir);
    },
    async has(id) {
      return stat(path.join(entryDir(id), 'data')).then(
        () => true,
        () => false,
      );
    },
    async list() {
      const names = (await readdir(dir).catch(() => [])).filter((name) => TASK_ID_PATTERN.test(name));
      const entries = await Promise.all(names.map((id) => store.get(id).catch(() => undefined)));
      return entries.filter((entry): entry is DeadEntry => entry !== undefined).sort((a, b) => a.failedAt.localeCompare(b.failedAt));
    },
    async get(id) {
      if (!TASK_ID_PATTERN.test(id)) throw notFound(id);
      const text = await readFile(path.join(entryDir(id), 'task.json'), 'utf8').catch((error: unknown) => {
        throw errnoCode(error) === 'ENOENT' ? notFound(id) : error;
      });
      const json = JSON.parse(text) as Record<string, unknown>;
      const data = path.join(entryDir(id), 'data');
      const hasData = await stat(data).then(() => true, () => false);
      return {
        id,
        target: String(json.target),
        route: String(json.route),
        dest: String(json.dest),
        bytes: Number(json.bytes),
        reason: String(json.reason ?? ''),
        failedAt: String(json.updated_at ?? ''),
        ...(json.record ? { record: json.record as TaskRecord } : {}),
        ...(hasData ? { data } : {}),
      };
    },
    async repair(task, reason) {
      if (await store.get(task.id).then(() => true, () => false)) return;
      await store.put(task, undefined, reason);
    },
    async remove(id) {
      await store.get(id);
      await rm(entryDir(id), { recursive: true, force: true });
      await fsyncDir(dir);
    },
  };
  return store;
}

const notFound = (id: string) => new StevedoreError('NOT_FOUND', `no dead-letter entry ${id}`);

// Both live under state_dir: one metadata write; a copy where links are not allowed.
async function linkIn(from: string, to: string): Promise<void> {
  await link(from, to).catch(async (error: unknown) => {
    if (errnoCode(error) === 'EEXIST') return;
    if (errnoCode(error) === 'ENOENT') throw error;
    await copyFile(from, to);
  });
}
