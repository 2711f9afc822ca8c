// The tar stream of a batch: each put's staged file, under its staging name, with the
// owner and mode it must have in the container (never the host file's own).
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import type { PutItem } from '../target.js';

export interface ArchiveEntry {
  item: PutItem;
  /** Path inside the archive, relative to the container's `/`. */
  name: string;
}

/** Streams the entries one after the other; the stream errors if a staged file cannot be read. */
export function archive(entries: readonly ArchiveEntry[]): Readable {
  const tar = pack();
  const mtime = new Date();
  void (async () => {
    for (const { item, name } of entries) {
      const { uid, gid } = item.owner ?? { uid: 0, gid: 0 };
      const entry = tar.entry({ name, size: item.bytes, mode: item.mode, uid, gid, mtime, type: 'file' });
      await pipeline(createReadStream(item.source), entry);
    }
    tar.finalize();
  })().catch((error: unknown) => tar.destroy(error as Error));
  return tar;
}
