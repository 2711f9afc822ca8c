// What a mirrored directory looked like at its last successful pushes: relative path →
// size, mtime, sha256, in state_dir/watch/<name>.json. On start it tells what changed
// while the agent was away, so a restart does not push the whole tree again. Written
// atomically, on close, and in between at most once a second — or once per 10,000
// entries' worth of milliseconds for a big tree, since each save writes it whole.
// A crash costs a few re-pushes. It also says where those files went (target, dest): a
// state for another place (the watch's dest or target changed) is not used, and the
// whole tree is pushed to the new one.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../../errors.js';
import { makeDir, writeFileDurable } from '../../durable.js';

export interface FileState {
  size: number;
  mtimeMs: number;
  sha256: string;
}

export interface MirrorState {
  load(): Promise<void>;
  get(rel: string): FileState | undefined;
  set(rel: string, state: FileState): void;
  remove(rel: string): void;
  /** Forgets everything under directory `rel`. */
  removeTree(rel: string): void;
  paths(): IterableIterator<string>;
  /** Never rejects: a save that fails is logged, and the next one writes it all again. */
  save(): Promise<void>;
  close(): Promise<void>;
}

const SAVE_DELAY = 1000;
const saveDelay = (entries: number) => Math.max(SAVE_DELAY, entries / 10);

/** Where a mirror's files are pushed: its state holds for that place only. */
export interface MirrorPlace {
  target: string;
  dest: string;
}

export function createMirrorState(file: string, place: MirrorPlace, log: Logger): MirrorState {
  let files = new Map<string, FileState>();
  let timer: NodeJS.Timeout | undefined;
  let saving = Promise.resolve();

  const save = () => {
    clearTimeout(timer);
    timer = undefined;
    const text = JSON.stringify({ version: 1, ...place, files: Object.fromEntries(files) });
    // A failed save must not fail the ones after it: chained on a rejection, every later
    // save failed with the first one's error, and close() threw (a stop cut short, a reload
    // stopped part-way).
    saving = saving
      .then(async () => {
        await makeDir(path.dirname(file));
        await writeFileDurable(file, text);
      })
      .catch((error: unknown) => log.warn({ file, err: error }, 'could not save the mirror state: files pushed meanwhile may be pushed again after a restart'));
    return saving;
  };
  const changed = () => {
    timer ??= setTimeout(() => void save(), saveDelay(files.size));
  };

  return {
    async load() {
      const text = await readFile(file, 'utf8').catch((error: unknown) => {
        if (errnoCode(error) === 'ENOENT') return undefined;
        throw error;
      });
      const parsed = text === undefined ? undefined : (JSON.parse(text) as Partial<MirrorPlace> & { files?: Record<string, FileState> });
      // A state saved before it said where (no target) is taken as this place's.
      const elsewhere = parsed?.target !== undefined && (parsed.target !== place.target || parsed.dest !== place.dest);
      files = new Map(elsewhere ? [] : Object.entries(parsed?.files ?? {}));
    },
    get: (rel) => files.get(rel),
    set(rel, state) {
      files.set(rel, state);
      changed();
    },
    remove(rel) {
      if (files.delete(rel)) changed();
    },
    removeTree(rel) {
      for (const key of files.keys()) if (key.startsWith(`${rel}/`)) files.delete(key);
      changed();
    },
    paths: () => files.keys(),
    save,
    async close() {
      if (timer) await save();
      await saving;
    },
  };
}
