// Streams one incoming file into a new staged file: SHA-256 and the size limit are
// applied while the bytes pass and the spool's free space is re-checked as it grows.
// On any failure the partial file is removed.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StevedoreError, errnoCode } from '../errors.js';
import { isOutOfFiles, outOfFiles } from '../open-files.js';
import { fsyncFile, writeNewFile } from '../durable.js';
import { streamed } from '../young-gc.js';
import type { Spool } from './spool.js';

export interface ReceiveOptions {
  maxBytes: number;
  /** Refuse to let the spool's disk drop below this many free bytes. */
  minFree: number;
  /**
   * false: the copy needs no flush of its own, because its source stays where it was
   * until the push succeeded (a watched file); recovery stages it again if a crash
   * cut the copy. Default true: an upload's bytes exist nowhere else.
   */
  flush?: boolean;
  onProgress?(bytes: number): void;
  /** Stops the body with its reason (a body slower than http.min_rate): the partial file is removed. */
  signal?: AbortSignal;
}

export interface Received {
  staged: string;
  bytes: number;
  sha256: string;
  /**
   * Settles when the staged file's bytes are on disk. The write and fsync run in the
   * background so that the caller can journal the task at the same time; a crash in
   * between is caught at recovery by the checksum. Always awaited (commit or discard).
   */
  durable: Promise<void>;
}

const FREE_CHECK_EVERY = 64 * 2 ** 20;
const WRITE_BUFFER = 2 ** 20;
/** Bodies declared at most this long are gathered in memory and written in one call. */
export const SMALL_BODY = 256 * 2 ** 10;

export async function receive(spool: Spool, body: Readable, options: ReceiveOptions, declared?: number): Promise<Received> {
  // A body destroyed before we got to it emits no further 'close': piping it would
  // wait forever (a client gone while we were admitting it).
  if (body.destroyed) throw clientAborted();
  options.signal?.throwIfAborted();
  if (declared !== undefined && declared <= SMALL_BODY && declared <= options.maxBytes) return receiveSmall(spool, body, options.flush ?? true, options.signal);
  return receiveStream(spool, body, options);
}

// Small files are where per-file overhead dominates: no stream machinery, and one
// writeNewFile (open, write, fdatasync, close) that runs while the task is journaled.
async function receiveSmall(spool: Spool, body: Readable, flush: boolean, signal?: AbortSignal): Promise<Received> {
  const data = await gather(body, signal);
  const file = spool.newFile();
  const durable = writeNewFile(file.path, data, flush).catch(async (error: unknown) => {
    await spool.remove(file.name);
    throw spoolError(error);
  });
  durable.catch(() => undefined); // awaited by commit or discard; never an unhandled rejection
  return { staged: file.name, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex'), durable };
}

// Collects a body whose length node:http already bounds by its Content-Length.
async function gather(body: Readable, signal?: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await readBody(body, (chunk) => chunks.push(chunk), signal);
  return Buffer.concat(chunks);
}

/**
 * The SHA-256 of a body read to its end and kept nowhere (a retried upload's, to compare
 * with the first one's), under receive()'s rules: TOO_LARGE past `maxBytes`,
 * CLIENT_ABORTED when the client goes, `signal`'s reason when it cuts the body (too slow).
 */
export async function digestBody(body: Readable, maxBytes: number, signal?: AbortSignal): Promise<string> {
  if (body.destroyed) throw clientAborted();
  const hash = createHash('sha256');
  let bytes = 0;
  await readBody(body, (chunk) => {
    bytes += chunk.length;
    if (bytes > maxBytes) throw tooLarge(maxBytes);
    hash.update(chunk);
  }, signal);
  return hash.digest('hex');
}

// Hands each chunk to `take` (which throws to stop) until the body ends, or `signal`
// cuts it (too slow). Listeners, not a pipeline: stopping must leave the request's
// socket open for the answer.
function readBody(body: Readable, take: (chunk: Buffer) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      try {
        take(chunk);
      } catch (error) {
        settle(() => reject(error));
      }
    };
    const onEnd = () => settle(resolve);
    const onClose = () => settle(() => reject(clientAborted()));
    const onError = (error: Error) => settle(() => reject(bodyError(error)));
    const onAbort = () => settle(() => reject(signal?.reason));
    const settle = (then: () => void) => {
      body.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onError);
      signal?.removeEventListener('abort', onAbort);
      then();
    };
    body.on('data', onData).once('end', onEnd).once('close', onClose).once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function receiveStream(spool: Spool, body: Readable, options: ReceiveOptions): Promise<Received> {
  const file = spool.newFile();
  const hash = createHash('sha256');
  let bytes = 0;
  let nextFreeCheck = FREE_CHECK_EVERY;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > options.maxBytes) {
        callback(tooLarge(options.maxBytes));
        return;
      }
      hash.update(chunk);
      streamed(chunk.length);
      options.onProgress?.(bytes);
      if (bytes < nextFreeCheck) return callback(null, chunk);
      nextFreeCheck += FREE_CHECK_EVERY;
      checkFree(spool, options.minFree).then(() => callback(null, chunk), callback);
    },
  });
  // The body is piped in, not pipelined: a failure here must leave the request's
  // socket open so that the caller can still answer 413 or 422.
  const onClose = () => {
    if (!body.readableEnded) meter.destroy(clientAborted());
  };
  const onError = (error: Error) => meter.destroy(bodyError(error));
  const onAbort = () => meter.destroy(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  body.once('close', onClose).once('error', onError).pipe(meter);
  try {
    await pipeline(meter, createWriteStream(file.path, { flags: 'wx', mode: 0o600, highWaterMark: WRITE_BUFFER }));
    const durable = (options.flush ?? true) ? fsyncFile(file.path) : Promise.resolve();
    durable.catch(() => undefined); // awaited by commit or discard
    return { staged: file.name, bytes, sha256: hash.digest('hex'), durable };
  } catch (error) {
    body.unpipe(meter);
    await spool.remove(file.name);
    throw spoolError(error);
  } finally {
    body.off('close', onClose).off('error', onError);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

// Within this of the limit, a cached reading is not trusted.
const NEAR_LIMIT = 256 * 2 ** 20;

/** Bytes admitted and not written yet: the disk does not count them, the next admission must. */
export interface Staging {
  bytes: number;
}

/**
 * Throws INSUFFICIENT_STORAGE when writing `incoming` more bytes (plus what `staging`
 * holds) would cross `minFree`. With `staging`, admitted bytes are added to it in the
 * same step as the check: concurrent admissions, each fitting alone, cannot all pass.
 */
export async function checkFree(spool: Spool, minFree: number, incoming = 0, staging?: Staging): Promise<void> {
  let free = await spool.freeBytes();
  if (free - incoming - (staging?.bytes ?? 0) < minFree + NEAR_LIMIT) free = await spool.freeBytes(true);
  const held = staging?.bytes ?? 0;
  if (free - incoming - held < minFree) {
    const what = held > 0 ? `${free} bytes free, ${held} being staged` : `${free} bytes free`;
    throw new StevedoreError('INSUFFICIENT_STORAGE', `the spool's disk would drop below min_free of ${minFree} bytes (${what})`, {
      details: { free, minFree, incoming, staging: held },
    });
  }
  if (staging) staging.bytes += incoming;
}

const clientAborted = () => new StevedoreError('CLIENT_ABORTED', 'the client went away mid-body');

// node:http reports a client gone mid-body (or cut by the idle timeout) as an
// "aborted" ECONNRESET error before 'close': the client's doing, not an internal error.
const bodyError = (error: Error): Error => (errnoCode(error) === 'ECONNRESET' ? clientAborted() : error);

export const tooLarge = (maxBytes: number) =>
  new StevedoreError('TOO_LARGE', `the body is larger than max_body (${maxBytes} bytes)`, { details: { maxBytes } });

/**
 * A full disk (or quota) under the spool or journal is INSUFFICIENT_STORAGE, no file
 * descriptor left TOO_MANY_OPEN_FILES; anything else as it came.
 */
export function spoolError(error: unknown): unknown {
  if (error instanceof StevedoreError) return error;
  if (errnoCode(error) === 'ENOSPC' || errnoCode(error) === 'EDQUOT') return new StevedoreError('INSUFFICIENT_STORAGE', 'the spool disk is full', { cause: error });
  return isOutOfFiles(error) ? outOfFiles(error) : error;
}
