// The SHA-256 of a file read through one buffer: a stream would allocate a new 64 KiB
// Buffer per read, garbage V8 lets pile up to 32 MB (see young-gc.ts).
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const READ_BYTES = 2 ** 20;

export async function hashFile(file: string): Promise<{ bytes: number; sha256: string }> {
  const handle = await open(file, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, null);
      if (bytesRead === 0) return { bytes, sha256: hash.digest('hex') };
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await handle.close();
  }
}
