// Coalescing: a file rewritten many times in quick succession is pushed once or twice,
// never once per write, and never out of order: the last content wins.
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StevedoreError } from '../../../src/errors.js';
import { failed } from '../../../src/targets/target.js';
import { scriptedTarget } from '../../helpers/targets.js';
import { waitFor } from '../../helpers/wait.js';
import { exists, landedPath, readOrUndefined, recorder, setup, sleep, startWatching, waitGone, waitIdle, waitLanded, type Push } from './harness.js';

const VERSIONS = Array.from({ length: 10 }, (_, i) => `version ${i} ${'.'.repeat(i * 7)}`);
const LAST = VERSIONS[9] as string;

/** Ten versions of different sizes, written one after the other. */
async function rewriteTenTimes(file: string): Promise<void> {
  for (const version of VERSIONS) {
    await writeFile(file, version);
    await sleep(10);
  }
}

/** True when `pushed` are versions of `written` in the order they were written, none twice. */
const inWrittenOrder = (pushed: (string | undefined)[], written: string[]) =>
  pushed.every((content, i) => i === 0 || written.indexOf(content ?? '') > written.indexOf(pushed[i - 1] ?? ''));

describe('coalescing', () => {
  it.each(['drop', 'mirror'] as const)('%s: a file rewritten ten times in quick succession is pushed at most twice, the last content winning', async (mode) => {
    const s = await setup();
    const rec = recorder();
    const t = await startWatching(s, { mode }, { createTarget: rec.createTarget });
    const file = path.join(s.dir, 'busy.txt');
    await rewriteTenTimes(file);
    await waitLanded(t, 'busy.txt', LAST);
    if (mode === 'drop') await waitGone(file);
    await waitIdle(t);
    await sleep(300);
    const puts = rec.puts('busy.txt');
    expect(puts.length).toBeGreaterThanOrEqual(1);
    expect(puts.length).toBeLessThanOrEqual(2);
    expect(puts.at(-1)?.content).toBe(LAST);
    expect(inWrittenOrder(puts.map((p) => p.content), VERSIONS)).toBe(true);
    expect(await readOrUndefined(landedPath(t, 'busy.txt'))).toBe(LAST);
  });

  // Writes to a settling file are not looked at one by one (the settler stats it again
  // anyway): the file must still settle only after its last write.
  it('drop: a file appended to every 50 ms for a second (settle 400ms) is pushed once, whole', async () => {
    const s = await setup();
    const rec = recorder();
    const t = await startWatching(s, { settle: '400ms' }, { createTarget: rec.createTarget });
    const file = path.join(s.dir, 'growing.txt');
    const handle = await open(file, 'w');
    const chunks = Array.from({ length: 20 }, (_, i) => `chunk ${i}\n`);
    try {
      for (const chunk of chunks) {
        await handle.write(chunk);
        await sleep(50);
      }
    } finally {
      await handle.close();
    }
    await waitLanded(t, 'growing.txt', chunks.join(''));
    await waitGone(file);
    await waitIdle(t);
    expect(rec.puts('growing.txt').map((p) => p.content)).toEqual([chunks.join('')]);
  });

  it('drop: rewritten while its first version is being pushed, the newer version follows, and the host file goes only after it', async () => {
    const s = await setup();
    const file = path.join(s.dir, 'doc.txt');
    const pushes: Push[] = [];
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    // The first push is held until the test lets it go; it then lands (the old version).
    const createTarget = scriptedTarget(async (items, signal, real) => {
      for (const item of items) if (item.op === 'put') pushes.push({ op: 'put', dest: item.dest, content: await readOrUndefined(item.source) });
      if (pushes.length === 1) await held;
      if (signal.aborted) return items.map(() => failed(new StevedoreError('PUSH_TIMEOUT', 'cancelled')));
      return real.push(items, signal);
    });
    const t = await startWatching(s, {}, { createTarget });
    await writeFile(file, 'first');
    await waitFor(() => pushes.length === 1, { what: 'the first version to be pushing' });
    await rewriteTenTimes(file);
    // A newer version is staged and queued behind the push in flight.
    await waitFor(() => t.logs.filter((l) => l.msg === 'task queued').length >= 2, { what: 'the newer version to be queued' });
    expect(await exists(file)).toBe(true);
    release();
    await waitLanded(t, 'doc.txt', LAST);
    await waitGone(file);
    await waitIdle(t);
    // ['first', LAST], unless a stalled machine let a middle version settle too
    const contents = pushes.map((p) => p.content);
    expect(contents[0]).toBe('first');
    expect(contents.at(-1)).toBe(LAST);
    expect(contents.length).toBeLessThanOrEqual(3);
    expect(inWrittenOrder(contents, ['first', ...VERSIONS])).toBe(true);
    expect(t.logs.some((l) => l.msg === 'kept a dropped file that changed after it was pushed; its new version follows')).toBe(true);
  });
});
