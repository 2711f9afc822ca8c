// The tar stream of a batch: each put's staged file, under its staging name, with the
// owner and mode it must have in the container (never the host file's own).
import { close, createReadStream, open, read } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { streamed } from '../../young-gc.js';
import type { PutItem } from '../target.js';

export interface ArchiveEntry {
  item: PutItem;
  /** Path inside the archive, relative to the container's `/`. */
  name: string;
}

// A stream per small file costs more than its bytes (~0.7 ms for 4 KiB): files up to
// SMALL are read whole, READ_AHEAD of them at once, bounding memory to 16 MiB.
// Callback fs, not fs/promises: open + read + close of a 4 KiB file costs a third of
// the CPU of promises' readFile (measured: 25–42 ms against 64–157 ms per 1,000).
const SMALL = 1 << 20;
const READ_AHEAD = 16;

/** Streams the entries one after the other; the stream errors if a staged file cannot be read. */
export function archive(entries: readonly ArchiveEntry[]): Readable {
  const tar = pack();
  const mtime = new Date();
  const reads = new Map<number, Promise<Buffer>>();
  const readAhead = (from: number) => {
    for (let i = from; i < Math.min(entries.length, from + READ_AHEAD); i += 1) {
      const entry = entries[i] as ArchiveEntry;
      if (!reads.has(i) && entry.item.bytes <= SMALL) reads.set(i, readSmall(entry.item.source, entry.item.bytes));
    }
  };
  void (async () => {
    for (const [i, { item, name }] of entries.entries()) {
      readAhead(i);
      const { uid, gid } = item.owner ?? { uid: 0, gid: 0 };
      const header = { name, size: item.bytes, mode: item.mode, uid, gid, mtime, type: 'file' as const };
      const read = reads.get(i);
      reads.delete(i);
      if (read) {
        const data = await read;
        if (data.length !== item.bytes) throw new Error(`${item.source} has ${data.length} bytes, not ${item.bytes}`);
        item.onProgress?.(data.length);
        await new Promise<void>((resolve, reject) => tar.entry(header, data, (error) => (error ? reject(error) : resolve())));
      } else {
        const stream = createReadStream(item.source);
        stream.on('data', (chunk: string | Buffer) => {
          streamed(chunk.length);
          item.onProgress?.(stream.bytesRead);
        });
        await pipeline(stream, tar.entry(header));
      }
    }
    tar.finalize();
  })().catch((error: unknown) => {
    // Reads already started must not end as unhandled rejections.
    reads.forEach((read) => read.catch(() => undefined));
    tar.destroy(error as Error);
  });
  return tar;
}

/** Reads the first `size` bytes of a file (fewer if it is shorter). */
function readSmall(file: string, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    open(file, 'r', (openError, fd) => {
      if (openError) return reject(openError);
      const buffer = Buffer.allocUnsafe(size);
      read(fd, buffer, 0, size, 0, (readError, bytesRead) => {
        close(fd, () => (readError ? reject(readError) : resolve(buffer.subarray(0, bytesRead))));
      });
    });
  });
}
