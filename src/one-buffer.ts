// Files read through one buffer of their own: a read stream allocates a new 64 KiB
// Buffer per read, garbage that V8 lets pile up to 32 MB (see young-gc.ts).
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

const BLOCK = 2 ** 20;

// Hands `use` each block of `from` from its start to its end; the bytes read.
async function eachBlock(from: FileHandle, use: (block: Buffer) => unknown): Promise<number> {
  const buffer = Buffer.allocUnsafe(BLOCK);
  let at = 0;
  for (;;) {
    const { bytesRead } = await from.read(buffer, 0, BLOCK, at);
    if (bytesRead === 0) return at;
    await use(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
}

/** The length and SHA-256 of a file. */
export async function hashFile(file: string): Promise<{ bytes: number; sha256: string }> {
  const handle = await open(file, 'r');
  try {
    const hash = createHash('sha256');
    const bytes = await eachBlock(handle, (block) => hash.update(block));
    return { bytes, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}

/** Copies `from` whole into `to` (just opened, empty); the bytes copied. */
export function copyHandle(from: FileHandle, to: FileHandle): Promise<number> {
  // writeFile writes at the handle's position and goes on after a short write.
  return eachBlock(from, (block) => to.writeFile(block));
}
