// A streamed body's chunks are dead once written, but V8 collects young buffers only
// when they add up to 32 MB: receive() has a minor GC run every 8 MiB (young-gc.ts), so
// that a large upload's memory stays flat (bench/ingest has the agent's RSS). Measured
// as the array buffers alive in this isolate while 256 MiB pass.
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { hashFile } from '../../src/one-buffer.js';
import { receive } from '../../src/spool/receive.js';
import { createSpool } from '../../src/spool/spool.js';
import { tempDir } from '../helpers/temp.js';

const MiB = 2 ** 20;
const CHUNK = 64 * 2 ** 10;

describe('memory while a body streams in', () => {
  it('keeps the dead chunks of a 256 MiB body under 20 MiB (V8 alone lets them reach 32 MB)', async () => {
    const spool = createSpool(await tempDir());
    await spool.init();
    const base = process.memoryUsage().arrayBuffers;
    let sent = 0;
    let peak = 0;
    // A fresh Buffer per chunk, as node:http's parser and file read streams hand them over.
    const body = new Readable({
      read() {
        if (sent % MiB === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
        if (sent === 256 * MiB) return void this.push(null);
        sent += CHUNK;
        this.push(Buffer.allocUnsafeSlow(CHUNK).fill(sent % 251));
      },
    });
    const received = await receive(spool, body, { maxBytes: Number.MAX_SAFE_INTEGER, minFree: 0 });
    await received.durable;
    expect(received.bytes).toBe(256 * MiB);
    expect(peak).toBeGreaterThan(CHUNK); // the sampling saw the chunks at all
    expect(peak).toBeLessThan(20 * MiB);
  });
});

describe('hashFile()', () => {
  it('gives the length and SHA-256 of files shorter, longer and not a multiple of its buffer, and of an empty one', async () => {
    const dir = await tempDir();
    for (const size of [0, 1, MiB, 3 * MiB + 17]) {
      const data = randomBytes(size);
      const file = path.join(dir, `f${size}`);
      await writeFile(file, data);
      expect(await hashFile(file)).toEqual({ bytes: size, sha256: createHash('sha256').update(data).digest('hex') });
    }
  });
});
