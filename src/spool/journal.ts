// The task journal: an append-only file of JSON lines under state_dir. A task is live
// from its `add` line until a `done` or `dead` line. Appends are group-committed:
// everything waiting is written with one write and one fdatasync, so many concurrent
// uploads share one disk flush instead of paying one each.
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { StevedoreError, errnoCode } from '../errors.js';
import type { DeliveryRecord, TaskRecord } from '../task.js';
import { writeFileDurable } from '../durable.js';

/**
 * add: accepted; done: pushed; dead: moved to dead-letter; discard: never acknowledged;
 * delivered: one member of a fleet has it (or never will): the task stays live for the rest.
 */
export type JournalEntry =
  | { op: 'add'; task: TaskRecord }
  | { op: 'done' | 'dead' | 'discard'; id: string }
  | ({ op: 'delivered'; id: string } & DeliveryRecord);

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
  /** restore(): check that the journal is still at its path even with no add to write. */
  check?: boolean;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface Journal {
  /** Reads the file, compacts it to the live tasks, and returns them in journal order. */
  open(): Promise<TaskRecord[]>;
  append(...entries: JournalEntry[]): Promise<void>;
  /**
   * Writes the live tasks at the journal's path again if the file there is not the one
   * it writes (state_dir removed or replaced under the agent); also done before every
   * batch with an `add`. Rejects while that cannot be written.
   */
  restore(): Promise<void>;
  readonly liveCount: number;
  close(): Promise<void>;
}

export function createJournal({ file, syncDirs, logger, compactAfter = 100_000 }: JournalOptions): Journal {
  const live = new Map<string, TaskRecord>();
  let handle: Held | undefined;
  // Opened once and held, not opened per commit: with descriptors run out, a commit
  // that needed one more failed every upload it carried. (Batches run one at a time.)
  const dirHandles = new Map<string, Held>();
  const syncDir = async (dir: string) => {
    let dirHandle = dirHandles.get(dir);
    if (!dirHandle) {
      dirHandle = await hold(await open(dir, 'r'));
      dirHandles.set(dir, dirHandle);
    }
    await dirHandle.file.sync();
  };
  let size = 0;
  let appended = 0;
  let waiting: Waiter[] = [];
  let flushing: Promise<void> | undefined;

  const apply = (entry: JournalEntry) => {
    if (entry.op === 'add') live.set(entry.task.id, entry.task);
    else if (entry.op === 'delivered') noteDelivered(live.get(entry.id), entry);
    else live.delete(entry.id);
  };

  // Rewrites the file with only the live tasks (temp file, fsync, rename).
  async function compact(): Promise<void> {
    const text = [...live.values()].map((task) => `${JSON.stringify({ op: 'add', task })}\n`).join('');
    // The old handle stays usable until the new file is in place: a failed
    // compaction leaves the journal as it was.
    await writeFileDurable(file, text);
    const next = await hold(await open(file, 'a', 0o600));
    await handle?.file.close();
    handle = next;
    size = Buffer.byteLength(text);
    appended = 0;
  }

  // state_dir removed or replaced under a running agent: the journal file and the spool
  // directory held open are then not those at their paths, and what is written to them
  // is lost with them. The live tasks are written at the path again, the directory
  // opened again; while that cannot be done, this throws.
  async function keepInPlace(): Promise<void> {
    const [onDisk, ...dirs] = await Promise.all([file, ...dirHandles.keys()].map((where) => stat(where).catch(() => undefined)));
    for (const [i, [dir, held]] of [...dirHandles].entries()) {
      if (isSame(dirs[i], held)) continue;
      dirHandles.delete(dir);
      await held.file.close().catch(() => undefined);
    }
    if (isSame(onDisk, handle)) return;
    await compact();
    logger.warn({ file, live: live.size }, `the journal was gone from its path (state_dir removed or replaced): wrote its ${live.size} live task(s) there again`);
  }

  async function writeBatch(batch: Waiter[]): Promise<void> {
    if (!handle) throw new StevedoreError('JOURNAL_CORRUPT', 'the journal is not open');
    const entries = batch.flatMap((w) => w.entries);
    if (batch.some((w) => w.check) || entries.some((e) => e.op === 'add')) await keepInPlace();
    if (entries.length === 0) return;
    const text = entries.map((e) => `${JSON.stringify(e)}\n`).join('');
    const file = handle.file;
    // The spool's new names and the journal lines are flushed side by side: both are
    // durable before anyone is told "accepted", and a record whose file did not make
    // it is caught at recovery by its checksum.
    const dirs = entries.some((e) => e.op === 'add') ? syncDirs.map(syncDir) : [];
    // appendFile loops until every byte is written (a bare write may stop short).
    // allSettled, not all: a directory flush failing at once must not cut the file
    // back while the write still runs, or its rest lands after the cut.
    const outcomes = await Promise.allSettled([...dirs, file.appendFile(text).then(() => file.datasync())]);
    const failure = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failure) {
      // A torn line would swallow the next good one: cut the file back first.
      await file.truncate(size).catch(() => undefined);
      throw failure.reason;
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
    restore() {
      return new Promise((resolve, reject) => {
        waiting.push({ entries: [], check: true, resolve, reject });
        schedule();
      });
    },
    get liveCount() {
      return live.size;
    },
    async close() {
      await flushing;
      await handle?.file.close();
      handle = undefined;
      await Promise.all([...dirHandles.values()].map((dir) => dir.file.close()));
      dirHandles.clear();
    },
  };
}

/** An open file and the inode it is, to tell whether its path still names it. */
interface Held {
  file: FileHandle;
  dev: number;
  ino: number;
}

async function hold(file: FileHandle): Promise<Held> {
  const { dev, ino } = await file.stat();
  return { file, dev, ino };
}

const isSame = (onDisk: { dev: number; ino: number } | undefined, held: Held | undefined) =>
  onDisk !== undefined && held !== undefined && onDisk.dev === held.dev && onDisk.ino === held.ino;

function parseEntry(line: string): JournalEntry | undefined {
  try {
    const entry = JSON.parse(line) as JournalEntry;
    if (entry.op === 'add' && typeof entry.task?.id === 'string') return entry;
    if ((entry.op === 'done' || entry.op === 'dead' || entry.op === 'discard') && typeof entry.id === 'string') return entry;
    if (entry.op === 'delivered' && typeof entry.id === 'string' && typeof entry.container === 'string') return entry;
  } catch {
    // fall through: reported by the caller with its line number
  }
  return undefined;
}

// A compacted journal keeps a live task's ended deliveries in its record.
function noteDelivered(record: TaskRecord | undefined, { container, memberId, outcome }: DeliveryRecord): void {
  if (!record) return;
  const others = (record.delivered ?? []).filter((d) => d.container !== container);
  record.delivered = [...others, { container, ...(memberId ? { memberId } : {}), outcome }];
}
