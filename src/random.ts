// Random bytes for ids and temporary names, drawn from a pooled buffer: one
// randomFillSync per 4 KiB instead of one syscall-backed call per upload.
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let offset = pool.length;

export function randomSlice(size: number): Buffer {
  if (offset + size > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  offset += size;
  return Buffer.from(pool.subarray(offset - size, offset));
}

/** `size` random bytes as base64url text. */
export const randomName = (size: number): string => randomSlice(size).toString('base64url');
