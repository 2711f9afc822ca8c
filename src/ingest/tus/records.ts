// A resumable upload on disk, in state_dir/uploads/ (0700, beside the spool): its bytes in
// <id>.part (0600; every PATCH fsyncs them before it is answered) and what it is in
// <id>.json (0600, replaced atomically: temp file, fsync, rename). Both outlive the
// process; load() reads them back at start.
import { constants } from 'node:fs';
import { chmod, copyFile, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, errorMessage } from '../../errors.js';
import { fsyncDir, fsyncFile, makeDir, writeFileDurable } from '../../durable.js';
import { randomName } from '../../random.js';
import { TASK_ID_PATTERN, type FileOptions } from '../../task.js';

export interface UploadRecord {
  id: string;
  /** Upload-Length. */
  size: number;
  /** Upload-Metadata as the client sent it (filename, relativePath, filetype…), echoed by HEAD. */
  metadata: Record<string, string | null>;
  route: string;
  target: string;
  dest: string;
  options: FileOptions;
  anonymous: boolean;
  createdAt: string;
  requestId?: string;
  /** The task its bytes became once journaled: the upload is over. */
  task?: string;
}

export interface LoadedUpload {
  record: UploadRecord;
  /** Bytes in the data file (0 once the upload became a task). */
  length: number;
  /** The last write to it (ms since the epoch). */
  touchedAt: number;
}

export interface UploadFiles {
  readonly dir: string;
  partPath(id: string): string;
  /** Makes the directory (0700) if it is not there; never its parents. */
  init(): Promise<void>;
  /** Creates the empty data file and the record; both are durable when it resolves. */
  create(record: UploadRecord): Promise<void>;
  /** Replaces the record. */
  save(record: UploadRecord): Promise<void>;
  /** The data file only (its bytes are a task's now, or abandoned). */
  removePart(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  /** Every upload found; leftovers of a crash in between (a data file without its record) are removed. */
  load(logger: Logger): Promise<LoadedUpload[]>;
}

export function createUploadFiles(dir: string): UploadFiles {
  // Ids are ours (uploads.ts checks them before a path is made): never a path to follow.
  const named = (id: string, suffix: string) => {
    if (!TASK_ID_PATTERN.test(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
    return path.join(dir, `${id}${suffix}`);
  };
  const partPath = (id: string) => named(id, '.part');
  return {
    dir,
    partPath,
    async init() {
      await makeDir(dir);
    },
    async create(record) {
      const handle = await open(partPath(record.id), 'wx', 0o600);
      await handle.close();
      // Its directory fsync makes the data file's name durable too.
      await writeFileDurable(named(record.id, '.json'), JSON.stringify(record));
    },
    save: (record) => writeFileDurable(named(record.id, '.json'), JSON.stringify(record)),
    async removePart(id) {
      await rm(partPath(id), { force: true });
    },
    async remove(id) {
      await rm(named(id, '.json'), { force: true });
      await rm(partPath(id), { force: true });
    },
    async load(logger) {
      const names = await readdir(dir);
      // Only records named by an upload id: another .json is not ours, and named()
      // would throw for it outside the catch below, stopping the agent's start.
      const ids = new Set(names.flatMap((name) => (name.endsWith('.json') ? [name.slice(0, -'.json'.length)] : [])).filter((id) => TASK_ID_PATTERN.test(id)));
      const loaded: LoadedUpload[] = [];
      for (const id of ids) {
        const upload = await loadOne(id, named(id, '.json'), partPath(id)).catch((error: unknown) => {
          logger.warn({ uploadId: id, err: errorMessage(error) }, 'an upload record cannot be read: the upload is removed');
          return undefined;
        });
        if (upload) loaded.push(upload);
        else await rm(named(id, '.json'), { force: true });
      }
      // A record's temp file, or a data file whose record was never written (a crash mid-create).
      const kept = new Set(loaded.flatMap(({ record }) => [`${record.id}.json`, `${record.id}.part`]));
      const strays = names.filter((name) => !kept.has(name) && !name.endsWith('.json'));
      await Promise.all(strays.map((name) => rm(path.join(dir, name), { force: true, recursive: true })));
      return loaded;
    },
  };
}

// A killed process's last writes are still in the page cache: fsynced here, the length
// found is durable before any client is told it.
async function loadOne(id: string, recordPath: string, part: string): Promise<LoadedUpload | undefined> {
  const record = JSON.parse(await readFile(recordPath, 'utf8')) as UploadRecord;
  if (record.id !== id || !Number.isSafeInteger(record.size)) throw new Error('the record is not an upload');
  const data = await stat(part).catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  });
  if (!data) return record.task ? { record, length: 0, touchedAt: Date.parse(record.createdAt) } : undefined;
  if (record.task) {
    await rm(part, { force: true }); // a task's already: the agent stopped before it removed it
    return { record, length: 0, touchedAt: data.mtimeMs };
  }
  if (data.nlink > 1) await ownCopy(part);
  else await fsyncFile(part);
  return { record, length: data.size, touchedAt: Math.max(data.mtimeMs, Date.parse(record.createdAt)) };
}

// A data file with another name is a task's staged file (finish.ts links it into the
// spool, and the agent stopped before the record said the upload was over), maybe
// landed through that same inode by the local target. The client is told it is one
// byte short and sends that byte again, and a PATCH writes into the data file and cuts
// it back to its end: the upload gets its own copy, so the task's bytes stay as they are.
async function ownCopy(part: string): Promise<void> {
  const temp = `${part}.${randomName(6)}.tmp`;
  try {
    await copyFile(part, temp, constants.COPYFILE_EXCL);
    await chmod(temp, 0o600); // the local target set the landed file's mode on that inode
    await fsyncFile(temp);
    await rename(temp, part);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(part));
}
