// The data store behind @tus/server: every upload's record and length in memory, its
// bytes and record on disk (records.ts). Unlike the library's FileStore it fsyncs every
// body before the offset moves (write.ts), writes records atomically, keeps its files
// 0600 in the 0700 spool, and ends an upload by journaling a task (finish.ts).
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DataStore, Upload } from '@tus/utils';
import type { Logger } from 'pino';
import { StevedoreError, errorMessage } from '../../errors.js';
import { currentCall, type TusCall } from './call.js';
import { finishUpload, type FinishDeps } from './finish.js';
import type { UploadFiles, UploadRecord } from './records.js';
import { writeAt } from './write.js';

export interface UploadObserver {
  /** Bytes of resumable uploads written to disk. */
  received(bytes: number): void;
  /** Abandoned uploads removed after http.upload_expiry. */
  expired(count: number): void;
}

export interface UploadStoreOptions extends FinishDeps {
  files: UploadFiles;
  logger: Logger;
  /** http.upload_expiry in ms, as configured now. */
  expiry(): number;
  observer?: UploadObserver;
}

interface LiveUpload {
  record: UploadRecord;
  /** Bytes in the data file. */
  length: number;
  touchedAt: number;
  /** The SHA-256 of the data file's `length` bytes, while this process wrote all of them. */
  running?: Hash;
  /** Bodies being written into it now: expiry leaves it alone. */
  writing: number;
}

export interface UploadsStatus {
  /** Uploads not finished yet, and their bytes on disk. */
  live: number;
  bytes: number;
  /** Abandoned uploads removed since the agent started. */
  expired: number;
  expiry_seconds: number;
}

export class UploadStore extends DataStore {
  override extensions = ['creation', 'creation-with-upload', 'termination', 'expiration', 'checksum'];
  private readonly uploads = new Map<string, LiveUpload>();
  private expiredCount = 0;

  constructor(private readonly deps: UploadStoreOptions) {
    super();
  }

  /** Reads back the uploads an earlier run left. */
  async open(): Promise<void> {
    await this.deps.files.init();
    for (const { record, length, touchedAt } of await this.deps.files.load(this.deps.logger)) {
      this.uploads.set(record.id, { record, length, touchedAt, writing: 0 });
    }
    if (this.uploads.size > 0) this.deps.logger.info({ uploads: this.uploads.size }, 'resumable uploads found from before: they can go on');
  }

  /** The upload's record, or undefined when there is none (never made, terminated, expired). */
  record(id: string): UploadRecord | undefined {
    return this.uploads.get(id)?.record;
  }

  status(): UploadsStatus {
    const live = this.unfinished();
    const bytes = live.reduce((sum, upload) => sum + upload.length, 0);
    return { live: live.length, bytes, expired: this.expiredCount, expiry_seconds: Math.round(this.deps.expiry() / 1000) };
  }

  /**
   * Room for one more unfinished upload, or QUEUE_FULL: each becomes a task, so they are
   * as many as queue.capacity, and those of routes without a token half of it. Unbounded,
   * anyone reaching such a route could leave any number of them (two files each) for
   * http.upload_expiry.
   */
  checkRoom(anonymous: boolean, capacity: number): void {
    const live = this.unfinished();
    const share = Math.ceil(capacity / 2);
    if (live.length >= capacity) throw tooMany(`${live.length} resumable uploads are unfinished, queue.capacity of them`);
    if (anonymous && live.filter((upload) => upload.record.anonymous).length >= share) {
      throw tooMany(`${share} resumable uploads of routes without a token are unfinished, their half of queue.capacity`);
    }
  }

  private unfinished(): LiveUpload[] {
    return [...this.uploads.values()].filter((upload) => upload.record.task === undefined);
  }

  override getExpiration(): number {
    return this.deps.expiry();
  }

  override async create(upload: Upload): Promise<Upload> {
    const call = currentCall();
    if (!call.creation || upload.size === undefined) throw new StevedoreError('INTERNAL', 'an upload was created without its route');
    const record: UploadRecord = { id: upload.id, size: upload.size, metadata: upload.metadata ?? {}, ...call.creation, createdAt: new Date().toISOString(), ...fromCall(call) };
    await this.deps.files.create(record);
    const live: LiveUpload = { record, length: 0, touchedAt: Date.now(), running: createHash('sha256'), writing: 0 };
    this.uploads.set(record.id, live);
    if (record.size === 0) await this.finish(live, call).catch(async (error: unknown) => {
      await this.remove(record.id);
      throw error;
    });
    return upload;
  }

  override async getUpload(id: string): Promise<Upload> {
    const { record, length, touchedAt } = this.live(id);
    // Not finished, it is at most one byte short: see finish.ts.
    const offset = record.task === undefined ? Math.min(length, Math.max(0, record.size - 1)) : record.size;
    // The library expires an upload from its creation_date: here, its last write.
    return new Upload({ id, size: record.size, offset, metadata: record.metadata, creation_date: new Date(touchedAt).toISOString() });
  }

  override async write(body: Readable, id: string, offset: number): Promise<number> {
    const call = currentCall();
    const live = this.live(id);
    if (live.record.task !== undefined) {
      body.resume();
      return live.record.size;
    }
    call.body?.read(call.req);
    live.writing += 1;
    try {
      const running = offset === live.length ? live.running : undefined;
      live.running = undefined;
      const options = { running, checksum: call.checksum, complete: () => call.req.complete, signal: call.body?.signal, onBytes: (bytes: number) => call.admission?.written(bytes) };
      const written = await writeAt(this.deps.files.partPath(id), body, offset, options).catch((error: unknown) => {
        live.length = offset; // the file was cut back to it
        live.running = running;
        throw error;
      });
      live.touchedAt = Date.now();
      live.length = offset + written.bytes;
      live.running = written.running;
      this.deps.observer?.received(written.bytes);
      const reached = live.length;
      if (reached === live.record.size) await this.finish(live, call);
      return reached;
    } finally {
      live.writing -= 1;
    }
  }

  override async remove(id: string): Promise<void> {
    this.live(id);
    this.uploads.delete(id);
    await this.deps.files.remove(id);
  }

  /** Removes uploads untouched for http.upload_expiry (finished ones quietly); resolves with how many were abandoned. */
  override async deleteExpired(): Promise<number> {
    const before = Date.now() - this.deps.expiry();
    const old = [...this.uploads.values()].filter((upload) => upload.touchedAt < before && upload.writing === 0);
    for (const { record } of old) {
      this.uploads.delete(record.id);
      await this.deps.files.remove(record.id);
    }
    const abandoned = old.filter(({ record }) => record.task === undefined);
    if (abandoned.length > 0) {
      this.expiredCount += abandoned.length;
      this.deps.observer?.expired(abandoned.length);
      this.deps.logger.info({ uploads: abandoned.map(({ record }) => ({ id: record.id, route: record.route, dest: record.dest, received: record.size })) }, `removed ${abandoned.length} resumable upload(s) left unfinished for http.upload_expiry`);
    }
    return abandoned.length;
  }

  /** The task a finished upload became. */
  taskOf(id: string): string | undefined {
    return this.uploads.get(id)?.record.task;
  }

  private live(id: string): LiveUpload {
    const live = this.uploads.get(id);
    if (!live) throw new StevedoreError('NOT_FOUND', `no upload ${id} (finished, terminated or expired uploads are removed)`);
    return live;
  }

  // The record says "finished" only once the task is journaled; if it cannot be saved,
  // this process still knows (the task is safe either way), and says so.
  private async finish(live: LiveUpload, call: TusCall): Promise<void> {
    const running = live.running;
    live.running = undefined;
    const task = await finishUpload(this.deps, live.record, running, call.ctx.requestId);
    live.record = { ...live.record, task: task.id };
    live.length = 0;
    try {
      await this.deps.files.save(live.record);
      await this.deps.files.removePart(live.record.id);
    } catch (error) {
      this.deps.logger.error({ uploadId: live.record.id, taskId: task.id, err: errorMessage(error) }, 'the upload became a task, but its record could not say so: after a restart the client may send its last byte again and queue it twice');
    }
  }
}

const fromCall = (call: TusCall) => (call.ctx.requestId === undefined ? {} : { requestId: call.ctx.requestId });

const tooMany = (why: string) => new StevedoreError('QUEUE_FULL', `${why}: finish or end one (DELETE), or retry once some expired`);
