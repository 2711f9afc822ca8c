// createSettler on real files: ready once size and mtime held for `settle`.
import type { Stats } from 'node:fs';
import { appendFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createSettler, type Settler } from '../../../src/ingest/watch/settle.js';
import { tempDir } from '../../helpers/temp.js';
import { waitFor } from '../../helpers/wait.js';
import { sleep } from './harness.js';

interface Ready {
  file: string;
  stats: Stats;
  at: number;
}

function settler(settleMs: number): { s: Settler; ready: Ready[] } {
  const ready: Ready[] = [];
  const s = createSettler(settleMs, (file) => stat(file).catch(() => undefined), (file, stats) => ready.push({ file, stats, at: Date.now() }));
  onTestFinished(() => s.close());
  return { s, ready };
}

/** A file last written a minute ago. */
async function oldFile(dir: string, name: string, content = 'old'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  const minuteAgo = new Date(Date.now() - 60_000);
  await utimes(file, minuteAgo, minuteAgo);
  return file;
}

// mtime comes from the kernel's coarse clock, up to a tick behind Date.now().
const CLOCK_TICK = 20;

describe('createSettler', () => {
  it('a file whose mtime is older than settle is ready at once, with the stats it was given', async () => {
    const dir = await tempDir();
    const file = await oldFile(dir, 'a.txt');
    const { s, ready } = settler(60_000);
    const stats = await stat(file);
    s.touch(file, stats);
    // synchronously: no timer, not even a stat
    expect(ready).toEqual([{ file, stats, at: expect.any(Number) }]);
    expect(s.pending).toBe(0);
  });

  it('without stats it stats the file itself, and an old file is ready without waiting for settle', async () => {
    const dir = await tempDir();
    const file = await oldFile(dir, 'a.txt', 'twelve bytes');
    const { s, ready } = settler(60_000);
    s.touch(file);
    const [first] = await waitFor(() => (ready.length > 0 ? ready : undefined), { what: 'the old file to be ready' });
    expect(first?.file).toBe(file);
    expect(first?.stats.size).toBe(12);
    expect(ready).toHaveLength(1);
  });

  it('a file being written is ready only settle after its last write, once, with its final size', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'growing.txt');
    // Pauses far shorter than settle: only a stall of 400 ms would let it settle early.
    const settleMs = 500;
    const { s, ready } = settler(settleMs);
    await writeFile(file, 'x');
    s.touch(file);
    let lastWrite = 0;
    for (let i = 0; i < 6; i += 1) {
      await sleep(100);
      expect(ready).toEqual([]);
      lastWrite = Date.now(); // taken before the write: its mtime is no earlier (but for a clock tick)
      await appendFile(file, 'x');
      // touched for some writes only: the settler must notice the others by itself
      if (i % 2 === 0) s.touch(file);
    }
    expect(s.pending).toBe(1);
    await waitFor(() => ready.length > 0, { what: 'the file to settle' });
    const [only] = ready;
    expect(only?.stats.size).toBe(7);
    expect(only?.at ?? 0).toBeGreaterThanOrEqual(lastWrite + settleMs - CLOCK_TICK);
    expect(s.pending).toBe(0);
    await sleep(settleMs + 100);
    expect(ready).toHaveLength(1);
  });

  it('forget() cancels: a forgotten file is never ready', async () => {
    const dir = await tempDir();
    const forgotten = path.join(dir, 'forgotten.txt');
    const kept = path.join(dir, 'kept.txt');
    await writeFile(forgotten, 'a');
    await writeFile(kept, 'b');
    // Settle well above the steps below: a stalled machine must not let it go first.
    const { s, ready } = settler(400);
    s.touch(forgotten);
    await sleep(20); // its first look (a stat) has come and gone; a timer waits
    s.forget(forgotten);
    expect(s.pending).toBe(0);
    // touched later with the same settle: ready after the forgotten file would have been
    s.touch(kept);
    await waitFor(() => ready.length > 0, { what: 'the kept file to settle' });
    await sleep(100);
    expect(ready.map((r) => r.file)).toEqual([kept]);
  });

  it('forget() right after touch(), before the first stat answers, also cancels', async () => {
    const dir = await tempDir();
    const file = await oldFile(dir, 'old.txt');
    const { s, ready } = settler(150);
    s.touch(file); // an old file: ready as soon as its stat answers…
    s.forget(file); // …but it is forgotten first
    await sleep(300);
    expect(ready).toEqual([]);
  });

  it('a file removed before it settles is dropped, not reported', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'brief.txt');
    await writeFile(file, 'here for a moment');
    const { s, ready } = settler(400);
    s.touch(file);
    await unlink(file);
    await waitFor(() => s.pending === 0, { what: 'the settler to drop the file' });
    await sleep(500);
    expect(ready).toEqual([]);
  });

  it('a directory is not a file: dropped', async () => {
    const dir = await tempDir();
    const { s, ready } = settler(50);
    s.touch(dir);
    await waitFor(() => s.pending === 0, { what: 'the settler to drop the directory' });
    await sleep(100);
    expect(ready).toEqual([]);
  });

  it('touching again restarts the wait instead of reporting twice', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'again.txt');
    await writeFile(file, 'v1');
    const { s, ready } = settler(400);
    s.touch(file);
    s.touch(file);
    await sleep(50);
    await writeFile(file, 'v2!');
    s.touch(file);
    await waitFor(() => ready.length > 0, { what: 'the file to settle' });
    await sleep(500);
    expect(ready).toHaveLength(1);
    expect(ready[0]?.stats.size).toBe(3);
  });

  it('close() cancels everything pending', async () => {
    const dir = await tempDir();
    const files = ['a', 'b', 'c'].map((n) => path.join(dir, n));
    await Promise.all(files.map((f) => writeFile(f, f)));
    const { s, ready } = settler(400);
    files.forEach((f) => s.touch(f));
    await sleep(20);
    expect(s.pending).toBe(3);
    s.close();
    expect(s.pending).toBe(0);
    await sleep(600);
    expect(ready).toEqual([]);
  });
});
