// Readiness: a file is pushed once its size and mtime held for `settle`, never half-way;
// work files (*.part, *.tmp, *.swp, *~, dotfiles) are ignored, so write-then-rename lands
// only the final name; `ignore` globs add to that.
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { barrier, exists, landedPath, listTree, recorder, setup, sleep, startWatching, waitGone, waitIdle, waitLanded } from './harness.js';

/** Writes `chunks` through one open handle, pausing `pauseMs` between them. */
async function slowWrite(file: string, chunks: string[], pauseMs: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    for (const [i, chunk] of chunks.entries()) {
      if (i > 0) await sleep(pauseMs);
      await handle.write(chunk);
    }
  } finally {
    await handle.close();
  }
}

describe('readiness', () => {
  // Pauses of 250 ms: longer than chokidar's event gap (each write is its own `change`),
  // shorter than settle (600 ms), so the file never holds still long enough to go early.
  it.each(['drop', 'mirror'] as const)('%s: a slow writer is never pushed half-way: one push, with the final content', async (mode) => {
    const s = await setup();
    const rec = recorder();
    const t = await startWatching(s, { mode, settle: '600ms' }, { createTarget: rec.createTarget });
    const chunks = Array.from({ length: 6 }, (_, i) => `chunk ${i} ${'x'.repeat(1000)}\n`);
    const final = chunks.join('');
    await slowWrite(path.join(s.dir, 'slow.txt'), chunks, 250);
    await waitLanded(t, 'slow.txt', final);
    if (mode === 'drop') await waitGone(path.join(s.dir, 'slow.txt'));
    await waitIdle(t);
    await sleep(700); // a second, later push would have started by now
    expect(rec.puts('slow.txt').map((p) => p.content)).toEqual([final]);
    expect(rec.pushes).toHaveLength(1);
    expect(await readFile(landedPath(t, 'slow.txt'), 'utf8')).toBe(final);
  });

  it('ignores *.part, *.tmp, *.swp, *~, dotfiles and dot-directories by default', async () => {
    const s = await setup();
    const rec = recorder();
    const t = await startWatching(s, {}, { createTarget: rec.createTarget });
    const ignored = ['x.part', 'x.tmp', '.x.swp', 'x.swp', 'notes.txt~', '.hidden', '.cache/inner.txt', 'sub/.dot/deep.txt', 'sub/y.part', '..data/k8s.txt'];
    for (const rel of ignored) {
      await mkdir(path.dirname(path.join(s.dir, rel)), { recursive: true });
      await writeFile(path.join(s.dir, rel), rel);
    }
    await sleep(400); // past settle: each would have been pushed by now
    await barrier(t, s.dir);
    expect(rec.pushes.map((p) => p.dest)).toEqual(['/srv/in/zz-sentinel.txt']);
    // drop mode leaves ignored files alone
    expect(await listTree(s.dir)).toEqual([...ignored].sort());
    expect(await listTree(path.join(t.root, 'srv/in'))).toEqual(['zz-sentinel.txt']);
  });

  it('write-then-rename (x.part → x) lands x only, once', async () => {
    const s = await setup();
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror' }, { createTarget: rec.createTarget });
    await mkdir(path.join(s.dir, 'sub'));
    for (const rel of ['report.csv', 'sub/data.json']) {
      const part = path.join(s.dir, `${rel}.part`);
      await slowWrite(part, ['first half,', 'second half'], 50);
      await rename(part, path.join(s.dir, rel));
    }
    await waitLanded(t, 'report.csv', 'first half,second half');
    await waitLanded(t, 'sub/data.json', 'first half,second half');
    await barrier(t, s.dir);
    expect(rec.pushes.map((p) => p.dest).sort()).toEqual(['/srv/in/report.csv', '/srv/in/sub/data.json', '/srv/in/zz-sentinel.txt']);
    expect(await exists(landedPath(t, 'report.csv.part'))).toBe(false);
  });

  it('ignore globs add to the defaults', async () => {
    const s = await setup();
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror', ignore: ['**/*.log', 'skip/**'] }, { createTarget: rec.createTarget });
    const files = { 'app.log': 'l', 'sub/deep/app.log': 'l', 'skip/a.txt': 's', 'skip/b/c.txt': 's', 'x.part': 'p', '.env': 'e', 'keep.txt': 'k', 'sub/keep.log.txt': 'k2' };
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(s.dir, rel)), { recursive: true });
      await writeFile(path.join(s.dir, rel), content);
    }
    await waitLanded(t, 'keep.txt', 'k');
    await waitLanded(t, 'sub/keep.log.txt', 'k2');
    await sleep(300);
    await barrier(t, s.dir);
    expect(await listTree(path.join(t.root, 'srv/in'))).toEqual(['keep.txt', 'sub/keep.log.txt', 'zz-sentinel.txt']);
    expect(rec.pushes).toHaveLength(3);
  });
});
