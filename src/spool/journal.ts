// The task journal: an append-only file of JSON lines under state_dir. A task is live
// from its `add` line until a `done` or `dead` line. Appends are group-committed:
// everything waiting is written with one write and one fdatasync, so many concurrent
// uploads share one disk flush instead of paying one each.
import { open, readFile, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { StevedoreError, errnoCode } from '../errors.js';
import type { TaskRecord } from '../queue/task.js';
import { writeFileDurable } from './durable.js';

/** add: accepted; done: pushed; dead: moved to dead-letter; discard: never acknowledged. */
export type JournalEntry = { op: 'add'; task: TaskRecord } | { op: 'done' | 'dead' | 'discard'; id: string };

export interface JournalOptions {
  file: string;
  /** Directories whose new entries must be durable before an `add` is (the spool). */
  syncDirs: string[];
  logger: Logger;
  /** Rewrite the file once this many lines were appended and most tasks are finished. */
  compactAfter?: number;
}

interface Waiter {
  entries: JournalEntry[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface Journal {
  /** Reads the file, compacts it to the live tasks, and returns them in journal order. */
  open(): Promise<TaskRecord[]>;
  append(...entries: JournalEntry[]): Promise<void>;
  readonly liveCount: number;
  close(): Promise<void>;
}

export function createJournal({ file, syncDirs, logger, compactAfter = 100_000 }: JournalOptions): Journal {
  const live = new Map<string, TaskRecord>();
  let handle: FileHandle | undefined;
  // Opened once and held, not opened per commit: with descriptors run out, a commit
  // that needed one more failed every upload it carried. (Batches run one at a time.)
  const dirHandles = new Map<string, FileHandle>();
  const syncDir = async (dir: string) => {
    let dirHandle = dirHandles.get(dir);
    if (!dirHandle) {
      dirHandle = await open(dir, 'r');
      dirHandles.set(dir, dirHandle);
    }
    await dirHandle.sync();
  };
  let size = 0;
  let appended = 0;
  let waiting: Waiter[] = [];
  let flushing: Promise<void> | undefined;

  const apply = (entry: JournalEntry) => {
    if (entry.op === 'add') live.set(entry.task.id, entry.task);
    else live.delete(entry.id);
  };

  // Rewrites the file with only the live tasks (temp file, fsync, rename).
  async function compact(): Promise<void> {
    const text = [...live.values()].map((task) => `${JSON.stringify({ op: 'add', task })}\n`).join('');
    // The old handle stays usable until the new file is in place: a failed
    // compaction leaves the journal as it was.
    await writeFileDurable(file, text);
    const next = await open(file, 'a', 0o600);
    await handle?.close();
    handle = next;
    size = Buffer.byteLength(text);
    appended = 0;
  }

  async function writeBatch(batch: Waiter[]): Promise<void> {
    if (!handle) throw new StevedoreError('JOURNAL_CORRUPT', 'the journal is not open');
    const entries = batch.flatMap((w) => w.entries);
    const text = entries.map((e) => `${JSON.stringify(e)}\n`).join('');
    const file = handle;
    // The spool's new names and the journal lines are flushed side by side: both are
    // durable before anyone is told "accepted", and a record whose file did not make
    // it is caught at recovery by its checksum.
    const dirs = entries.some((e) => e.op === 'add') ? syncDirs.map(syncDir) : [];
    try {
      // appendFile loops until every byte is written (a bare write may stop short).
      await Promise.all([...dirs, file.appendFile(text).then(() => file.datasync())]);
    } catch (error) {
      // A torn line would swallow the next good one: cut the file back first.
      await handle.truncate(size).catch(() => undefined);
      throw error;
    }
    size += Buffer.byteLength(text);
    appended += entries.length;
    entries.forEach(apply);
  }

  async function flushLoop(): Promise<void> {
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      try {
        await writeBatch(batch);
        batch.forEach((w) => w.resolve());
      } catch (error) {
        batch.forEach((w) => w.reject(error));
      }
      if (appended > compactAfter && appended > live.size * 4) {
        await compact().catch((error: unknown) => logger.error({ err: error }, 'journal compaction failed'));
      }
    }
  }

  function schedule(): void {
    if (flushing) return;
    flushing = flushLoop().finally(() => {
      flushing = undefined;
      if (waiting.length > 0) schedule();
    });
  }

  return {
    async open() {
      const text = await readFile(file, 'utf8').catch((error: unknown) => {
        if (errnoCode(error) === 'ENOENT') return '';
        throw error;
      });
      const lines = text.split('\n');
      lines.forEach((line, index) => {
        if (line === '') return;
        const entry = parseEntry(line);
        if (entry) apply(entry);
        else logger.warn({ file, line: index + 1 }, 'skipping an unreadable journal line (torn write?)');
      });
      await compact();
      return [...live.values()];
    },
    append(...entries) {
      return new Promise((resolve, reject) => {
        waiting.push({ entries, resolve, reject });
        schedule();
      });
    },
    get liveCount() {
      return live.size;
    },
    async close() {
      await flushing;
      await handle?.close();
      handle = undefined;
      await Promise.all([...dirHandles.values()].map((dir) => dir.close()));
      dirHandles.clear();
    },
  };
}

function parseEntry(line: string): JournalEntry | undefined {
  try {
    const entry = JSON.parse(line) as JournalEntry;
    if (entry.op === 'add' && typeof entry.task?.id === 'string') return entry;
    if ((entry.op === 'done' || entry.op === 'dead' || entry.op === 'discard') && typeof entry.id === 'string') return entry;
  } catch {
    // fall through: reported by the caller with its line number
  }
  return undefined;
}
