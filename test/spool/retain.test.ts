import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createRetainStore } from '../../src/spool/retain.js';
import { newTask, type Task } from '../../src/task.js';
import { tempDir } from '../helpers/temp.js';

// The retained versions a fleet's later members get (SPEC §7): the newest per
// destination, their bytes counted once, the oldest dropped past retain_max.
async function setUp(maxBytes: number) {
  const dir = await tempDir();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const store = createRetainStore(path.join(dir, 'retain'), maxBytes, logger);
  await store.open();
  let n = 0;
  // A staged file of `bytes` bytes (its content makes its sha256) and its task, accepted `n` seconds in.
  const staged = async (dest: string, bytes: number, fill: string): Promise<[Task, string]> => {
    const file = path.join(dir, `staged-${n}`);
    await writeFile(file, fill.repeat(bytes));
    const task = newTask({
      id: `t${n}`, kind: 'put', source: 'http', route: 'r', target: 'web', dest, bytes, sha256: fill.repeat(64), staged: path.basename(file),
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n++)).toISOString(), options: { mode: 0o644, dirMode: 0o755, retry: { attempts: 1, initialDelay: 100, maxDelay: 100 }, pushTimeout: 1000, retain: true },
    });
    return [task, file];
  };
  return { dir, store, lines, staged };
}

describe('the retained versions', () => {
  it('keeps the newest version of each destination and counts each file once', async () => {
    const { store, staged } = await setUp(1000);
    for (const [dest, fill] of [['/a', 'a'], ['/b', 'b'], ['/c', 'b']] as const) await store.keep(...(await staged(dest, 100, fill)));
    expect(store.versions('web').map((v) => v.dest).sort()).toEqual(['/a', '/b', '/c']);
    expect(store.bytes).toBe(200); // /b and /c share their bytes

    await store.keep(...(await staged('/a', 50, 'c'))); // a newer /a: the old one's file goes
    expect(store.versions('web').find((v) => v.dest === '/a')?.sha256).toBe('c'.repeat(64));
    expect(store.bytes).toBe(150);
    await store.close();
  });

  it('keeps the newer version when an older one of the same destination is still being linked in', async () => {
    const { dir, store, staged } = await setUp(1000);
    await store.keep(...(await staged('/other', 10, 'b'))); // b's bytes are kept already
    const older = await staged('/a', 10, 'a'); // new bytes: linked in, which takes a moment
    const newer = await staged('/a', 10, 'b'); // bytes known: kept at once
    const first = store.keep(...older);
    await store.keep(...newer);
    await first;
    expect(store.versions('web').find((v) => v.dest === '/a')?.sha256).toBe('b'.repeat(64));
    // The older version's bytes, kept by no one, go.
    expect(store.bytes).toBe(10);
    expect(await readdir(path.join(dir, 'retain', 'data'))).toEqual(['b'.repeat(64)]);
    await store.close();
  });

  it('keeps the bytes of a version kept while the same bytes of a forgotten one are being removed', async () => {
    const { dir, store, staged } = await setUp(1000);
    await store.keep(...(await staged('/b', 10, 'b')));
    const again = await staged('/a', 10, 'b'); // the same bytes, under another destination
    store.forget('web', '/b'); // b's bytes, kept by no one now, start to go
    await store.keep(...again);
    await store.flush();
    expect(store.versions('web').map((v) => v.dest)).toEqual(['/a']);
    expect(await readdir(path.join(dir, 'retain', 'data'))).toEqual(['b'.repeat(64)]);
    expect(store.bytes).toBe(10);
    await store.close();
  });

  it('drops the oldest versions past retain_max, each one logged, and none while under it', async () => {
    const { store, lines, staged } = await setUp(250);
    for (const dest of ['/1', '/2']) await store.keep(...(await staged(dest, 100, dest.slice(1))));
    expect(lines.filter((l) => String(l.msg).startsWith('dropped'))).toEqual([]);

    await store.keep(...(await staged('/3', 100, '3')));
    expect(store.versions('web').map((v) => v.dest).sort()).toEqual(['/2', '/3']);
    expect(store.bytes).toBe(200);
    expect(lines.filter((l) => String(l.msg).startsWith('dropped')).map((l) => l.dest)).toEqual(['/1']);
    await store.close();
  });

  it('opens with the saved versions and their sizes, and removes data no version refers to', async () => {
    const { dir, store, staged } = await setUp(1000);
    await store.keep(...(await staged('/a', 100, 'a')));
    await store.close();
    await writeFile(path.join(dir, 'retain', 'data', 'f'.repeat(64)), 'stray');

    const again = createRetainStore(path.join(dir, 'retain'), 1000, pino({ level: 'silent' }));
    await again.open();
    expect(again.versions('web').map((v) => v.dest)).toEqual(['/a']);
    expect(again.bytes).toBe(100);
    expect(await readdir(path.join(dir, 'retain', 'data'))).toEqual(['a'.repeat(64)]);
    await again.close();
  });
});
