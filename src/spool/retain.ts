// Retained versions (SPEC §7): for a fleet's later members, the newest version of each
// destination of a route or drop watch with `retain: true`, and of every mirror whose
// target is a fleet. Content-addressed under state_dir/retain: data/<sha256> is a hard
// link of the staged file (same filesystem: no copy, no flush), index.json maps target →
// dest → version. Bounded by retain_max: the oldest versions go first, each one logged.
// The index is saved at most once a second, on close, and when asked (flush) before a
// task whose version it holds is journaled as over: a crash can lose the last entries,
// never a file's bytes under another name (data without an index entry is removed at
// open), and the agent keeps the tasks it recovers (still staged) again.
import { copyFile, link, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../errors.js';
import { writeFileDurable } from '../durable.js';
import type { FileOptions, Task } from '../task.js';

export interface RetainedVersion {
  target: string;
  dest: string;
  sha256: string;
  bytes: number;
  options: FileOptions;
  route: string;
  /** When its task was accepted: a newer task for the destination wins over it. */
  createdAt: string;
}

export interface RetainStore {
  open(): Promise<void>;
  /** Keeps `task`'s file (staged at `staged`) as its destination's newest version. */
  keep(task: Task, staged: string): Promise<void>;
  /** The destination (and, for a directory, everything under it) is deleted: none kept. */
  forget(target: string, dest: string, dir?: boolean): void;
  versions(target: string): RetainedVersion[];
  /** Where a version's bytes are. */
  path(sha256: string): string;
  readonly bytes: number;
  /** Saves the index now if it changed since the last save. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

const SAVE_DELAY = 1000;
const SHA = /^[0-9a-f]{64}$/;

export function createRetainStore(dir: string, maxBytes: number, logger: Logger): RetainStore {
  const data = path.join(dir, 'data');
  const indexFile = path.join(dir, 'index.json');
  const index = new Map<string, RetainedVersion>(); // `${target}\0${dest}`
  const sizes = new Map<string, number>(); // sha256 → bytes, each file once
  let timer: NodeJS.Timeout | undefined;
  let saving = Promise.resolve();
  const keyOf = (target: string, dest: string) => `${target}\0${dest}`;
  const dataPath = (sha: string) => path.join(data, sha);

  // A save not started yet: every change so far is in it, since the index is read when it
  // starts. Saves asked meanwhile join it: one write for the tasks that end together, not
  // one each (each a JSON of the whole index and an fsync).
  let next: Promise<void> | undefined;
  const save = () => {
    clearTimeout(timer);
    timer = undefined;
    next ??= saving.then(() => {
      next = undefined;
      return writeFileDurable(indexFile, JSON.stringify({ version: 1, versions: [...index.values()] }));
    }).catch((error: unknown) => logger.warn({ err: error }, 'could not save the retained versions index'));
    saving = next;
    return next;
  };
  const flush = () => (timer ? save() : saving);
  const changed = () => void (timer ??= setTimeout(() => void save(), SAVE_DELAY).unref());
  // Kept as a sum, not summed on each keep: a mirror's first push keeps thousands of versions.
  let total = 0;
  const sized = (sha: string, bytes: number) => {
    if (sizes.has(sha)) return;
    sizes.set(sha, bytes);
    total += bytes;
  };

  // What touches one file's bytes (linking it in, removing it) runs one at a time: a
  // removal that started before a keep of the same bytes would otherwise delete them from
  // under the version just kept.
  const busy = new Map<string, Promise<void>>();
  const exclusive = <T>(sha: string, work: () => Promise<T>): Promise<T> => {
    const done = (busy.get(sha) ?? Promise.resolve()).then(work);
    const settled = done.then(() => undefined, () => undefined);
    busy.set(sha, settled);
    void settled.then(() => busy.get(sha) === settled && busy.delete(sha));
    return done;
  };
  const unreferenced = async (sha: string) => {
    if ([...index.values()].some((v) => v.sha256 === sha)) return;
    total -= sizes.get(sha) ?? 0;
    sizes.delete(sha);
    await rm(dataPath(sha), { force: true });
  };
  // A file no version refers to any more goes.
  const release = (sha: string) => exclusive(sha, () => unreferenced(sha));

  async function evict(): Promise<void> {
    if (total <= maxBytes) return; // before sorting: sorting every version on each keep made a mirror's first push CPU-bound
    const oldest = [...index.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    while (total > maxBytes && oldest.length > 0) {
      const version = oldest.shift() as RetainedVersion;
      index.delete(keyOf(version.target, version.dest));
      logger.info({ target: version.target, dest: version.dest, bytes: version.bytes, retainMax: maxBytes }, 'dropped the oldest retained version to stay under retain_max: a member that joins now does not get it');
      await release(version.sha256);
    }
  }

  return {
    async open() {
      await mkdir(data, { recursive: true, mode: 0o700 });
      const text = await readFile(indexFile, 'utf8').catch((error: unknown) => (errnoCode(error) === 'ENOENT' ? undefined : Promise.reject(error)));
      const saved = text === undefined ? [] : ((JSON.parse(text) as { versions?: RetainedVersion[] }).versions ?? []);
      const referred = new Set(saved.map((v) => v.sha256));
      for (const name of await readdir(data)) {
        const size = await stat(dataPath(name)).then((s) => s.size, () => undefined);
        if (SHA.test(name) && size !== undefined && referred.has(name)) sized(name, size);
        else await rm(dataPath(name), { force: true, recursive: true });
      }
      for (const version of saved) if (sizes.has(version.sha256)) index.set(keyOf(version.target, version.dest), version);
    },
    async keep(task, staged) {
      const key = keyOf(task.target, task.dest);
      const newer = () => (index.get(key)?.createdAt ?? '') > task.createdAt;
      if (newer()) return;
      // `undefined` when a newer version was kept while this one was linked in.
      const kept = await exclusive(task.sha256, async () => {
        if (!sizes.has(task.sha256)) {
          await link(staged, dataPath(task.sha256)).catch(async (error: unknown) => {
            if (errnoCode(error) === 'EEXIST') return;
            await copyFile(staged, dataPath(task.sha256));
          });
          sized(task.sha256, task.bytes);
        }
        // A newer version of the destination (two uploads at once) may have been kept
        // meanwhile: it stays, and this one's bytes go if nothing else has them.
        if (newer()) return void (await unreferenced(task.sha256));
        const { target, dest, sha256, bytes, options, route, createdAt } = task;
        const before = index.get(key);
        index.set(key, { target, dest, sha256, bytes, options, route, createdAt });
        return { before };
      });
      if (!kept) return;
      if (kept.before && kept.before.sha256 !== task.sha256) await release(kept.before.sha256);
      await evict();
      changed();
    },
    forget(target, dest, dir = false) {
      for (const [key, version] of index) {
        if (version.target !== target || (version.dest !== dest && !(dir && version.dest.startsWith(`${dest}/`)))) continue;
        index.delete(key);
        release(version.sha256).catch((error: unknown) => logger.warn({ target, dest: version.dest, err: error }, 'could not remove a retained version\'s file'));
      }
      changed();
    },
    versions: (target) => [...index.values()].filter((v) => v.target === target),
    path: dataPath,
    get bytes() {
      return total;
    },
    flush,
    close: flush,
  };
}
