// createStageQueue: how many files are staged at once, none without room, one file's
// versions in order and the newest one only.
import { describe, expect, it } from 'vitest';
import { createStageQueue } from '../../../src/ingest/watch/stage-queue.js';
import type { Version } from '../../../src/ingest/watch/stage.js';
import { waitFor } from '../../helpers/wait.js';

const v = (size: number): Version => ({ size, mtimeMs: size, dev: 1, ino: size });

/** A queue whose stages wait until let go by hand, and what they were called with. */
function held(options: { concurrency?: number; room?: () => boolean } = {}) {
  const started: { file: string; size: number }[] = [];
  const release = new Map<string, () => void>();
  const failures: unknown[] = [];
  const queue = createStageQueue({
    concurrency: options.concurrency ?? 2,
    room: options.room ?? (() => true),
    stage: (file, version) => {
      started.push({ file, size: version.size });
      if (file === 'throws') return Promise.reject(new Error('a bug'));
      return new Promise<void>((resolve) => release.set(file, resolve));
    },
    failed: (_file, error) => failures.push(error),
  });
  const finish = (file: string) => {
    const done = release.get(file);
    release.delete(file);
    done?.();
  };
  return { queue, started, finish, failures };
}

describe('createStageQueue', () => {
  it('stages at most `concurrency` files at once, in the order they came', async () => {
    const { queue, started, finish } = held({ concurrency: 2 });
    for (const file of ['a', 'b', 'c', 'd']) queue.push(file, v(1));
    expect(started.map((s) => s.file)).toEqual(['a', 'b']);
    expect(queue.size).toBe(4);
    finish('b');
    await waitFor(() => started.length === 3);
    expect(started.map((s) => s.file)).toEqual(['a', 'b', 'c']);
    finish('a');
    finish('c');
    await waitFor(() => started.length === 4);
    finish('d');
    await waitFor(() => queue.size === 0);
  });

  it('stages nothing while paused or without room, and goes on once woken', async () => {
    let room = false;
    const { queue, started, finish } = held({ room: () => room });
    queue.push('a', v(1));
    expect(started).toEqual([]);
    room = true;
    queue.pause();
    queue.wake();
    expect(started).toEqual([]);
    queue.resume();
    expect(started).toEqual([{ file: 'a', size: 1 }]);
    room = false;
    queue.push('b', v(1));
    finish('a');
    await waitFor(() => queue.size === 1);
    expect(started.map((s) => s.file)).toEqual(['a']);
    room = true;
    queue.wake();
    expect(started.map((s) => s.file)).toEqual(['a', 'b']);
  });

  it('a newer version replaces one waiting; one that comes while a version is staged follows it', async () => {
    const { queue, started, finish } = held({ concurrency: 1 });
    queue.push('busy', v(1));
    queue.push('a', v(1));
    queue.push('a', v(2));
    expect(queue.size).toBe(2);
    finish('busy');
    await waitFor(() => started.length === 2);
    expect(started[1]).toEqual({ file: 'a', size: 2 });
    queue.push('a', v(3));
    queue.push('a', v(4));
    expect(started).toHaveLength(2);
    finish('a');
    await waitFor(() => started.length === 3);
    expect(started[2]).toEqual({ file: 'a', size: 4 });
  });

  it('a stage that throws is told to failed() and frees its place', async () => {
    const { queue, started, failures } = held({ concurrency: 1 });
    queue.push('throws', v(1));
    queue.push('next', v(1));
    await waitFor(() => started.length === 2);
    expect(failures).toEqual([new Error('a bug')]);
  });

  it('close() drops what waits and resolves once the running stages are over', async () => {
    const { queue, started, finish } = held({ concurrency: 1 });
    queue.push('a', v(1));
    queue.push('b', v(1));
    let closed = false;
    const closing = queue.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(closed).toBe(false);
    finish('a');
    await closing;
    queue.push('c', v(1));
    expect(started.map((s) => s.file)).toEqual(['a']);
  });
});
