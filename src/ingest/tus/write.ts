// One request's body written into an upload's data file at `offset`. It resolves only
// once the bytes are fsynced: an offset reported after that survives a crash. A body
// that fails (too slow, too large, disk full, checksum mismatch, or cut short while a
// checksum was announced) leaves nothing: the file is cut back to `offset`.
import type { Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { streamed } from '../../young-gc.js';
import { checkDigest, checksumHash, type ExpectedChecksum } from './checksum.js';

export interface WriteOptions {
  /** The SHA-256 of the file's first `offset` bytes, when known: carried on over the body. */
  running?: Hash;
  checksum?: ExpectedChecksum;
  /** Whether the request's body arrived whole (the library ends a cut body like a whole one). */
  complete(): boolean;
  /** Aborted with its reason (a body slower than http.min_rate). */
  signal?: AbortSignal;
  /** The bytes written so far, after each write. */
  onBytes?(written: number): void;
}

export interface Written {
  bytes: number;
  /** `running` carried over the new bytes. */
  running?: Hash;
}

// Node hands a body over in chunks of up to 64 KiB: gathered to this before each
// write, a GiB costs ~1,000 system calls instead of ~16,000.
const WRITE_BYTES = 2 ** 20;

export async function writeAt(file: string, body: Readable, offset: number, options: WriteOptions): Promise<Written> {
  const handle = await open(file, 'r+');
  const onAbort = () => body.destroy(options.signal?.reason as Error);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const sync = backgroundSync(handle);
  try {
    const written = await copyBody(handle, body, offset, options, sync);
    await sync.settle();
    if (options.checksum && !options.complete()) {
      await handle.truncate(offset);
      return { bytes: 0, ...(options.running ? { running: options.running } : {}) };
    }
    if (written.check && options.checksum) checkDigest(options.checksum, written.check);
    await handle.truncate(offset + written.bytes); // a longer file (an unfinished last byte sent again) ends here
    await handle.datasync();
    return { bytes: written.bytes, ...(written.running ? { running: written.running } : {}) };
  } catch (error) {
    await handle.truncate(offset).catch(() => undefined);
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await sync.settle().catch(() => undefined); // a failure here was thrown above, or the body failed first
    await handle.close();
  }
}

interface BackgroundSync {
  /** Starts an fdatasync of what is written so far, unless one runs. */
  kick(): void;
  /** Waits for the one running; throws the first failure of any. */
  settle(): Promise<void>;
}

// Flushes what is written while the rest of the body still arrives, so that the
// fdatasync before the answer has little left to do (8 MiB PATCHes: +10-15%). A failure
// is kept for settle(): Linux reports a failed writeback to one fsync only.
function backgroundSync(handle: FileHandle): BackgroundSync {
  let running: Promise<void> | undefined;
  let failure: unknown;
  return {
    kick() {
      running ??= handle.datasync().then(
        () => void (running = undefined),
        (error: unknown) => {
          failure ??= error;
          running = undefined;
        },
      );
    },
    async settle() {
      await running;
      if (failure !== undefined) throw failure;
    },
  };
}

async function copyBody(handle: FileHandle, body: Readable, offset: number, options: WriteOptions, sync: BackgroundSync): Promise<Written & { check?: Hash }> {
  options.signal?.throwIfAborted();
  const running = options.running?.copy();
  const check = options.checksum ? checksumHash(options.checksum) : undefined;
  let bytes = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    await writeAll(handle, pending, pendingBytes, offset + bytes);
    bytes += pendingBytes;
    pending = [];
    pendingBytes = 0;
    options.onBytes?.(bytes);
    sync.kick();
  };
  for await (const chunk of body as AsyncIterable<Buffer>) {
    running?.update(chunk);
    check?.update(chunk);
    pending.push(chunk);
    pendingBytes += chunk.length;
    streamed(chunk.length);
    if (pendingBytes >= WRITE_BYTES) await flush();
  }
  if (pendingBytes > 0) await flush();
  return { bytes, ...(running ? { running } : {}), ...(check ? { check } : {}) };
}

// writev may write less than asked (a disk filling up): the rest is written again,
// and a disk that is full throws ENOSPC there.
async function writeAll(handle: FileHandle, buffers: Buffer[], total: number, position: number): Promise<void> {
  const { bytesWritten } = await handle.writev(buffers, position);
  if (bytesWritten === total) return;
  const rest = Buffer.concat(buffers).subarray(bytesWritten);
  for (let done = 0; done < rest.length; ) {
    const { bytesWritten: more } = await handle.write(rest, done, rest.length - done, position + bytesWritten + done);
    done += more;
  }
}
