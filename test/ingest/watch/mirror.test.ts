// Mirror mode: the container path follows the host directory. New and changed files are
// pushed, host files are never touched, and with `delete: true` host deletes (a file, a
// whole directory) and renames follow into the container.
import { lstat, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TestAgent } from '../../helpers/agent.js';
import { createTestTarget, wrapTargets } from '../../helpers/targets.js';
import { barrier, exists, landedPath, listTree, recorder, setup, startWatching, waitGone, waitLanded, writeTree } from './harness.js';

/** What must not change about a host file: identity, times, size, content. */
async function fingerprint(file: string) {
  const stats = await lstat(file);
  return { ino: stats.ino, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, mode: stats.mode, size: stats.size, content: await readFile(file, 'utf8') };
}

const boxTree = (t: { root: string }) => listTree(path.join(t.root, 'srv/in'));

describe('mirror mode', () => {
  it('pushes new and changed files and never touches the host files', async () => {
    const s = await setup();
    const host = (rel: string) => path.join(s.dir, rel);
    await writeTree(s.dir, { 'a.txt': 'A', 'sub/b.txt': 'B' });
    const a = await fingerprint(host('a.txt'));
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror' }, { createTarget: rec.createTarget });
    await waitLanded(t, 'a.txt', 'A');
    await waitLanded(t, 'sub/b.txt', 'B');

    await writeTree(s.dir, { 'new/c.txt': 'C', 'sub/b.txt': 'B, changed' });
    const [b, c] = await Promise.all([fingerprint(host('sub/b.txt')), fingerprint(host('new/c.txt'))]);
    await waitLanded(t, 'new/c.txt', 'C');
    await waitLanded(t, 'sub/b.txt', 'B, changed');
    await barrier(t, s.dir);

    expect([await fingerprint(host('a.txt')), await fingerprint(host('sub/b.txt')), await fingerprint(host('new/c.txt'))]).toEqual([a, b, c]);
    expect(await listTree(s.dir)).toEqual(['a.txt', 'new/c.txt', 'sub/b.txt', 'zz-sentinel.txt']);
    expect(rec.puts('a.txt').map((p) => p.content)).toEqual(['A']);
    expect(rec.puts('sub/b.txt').map((p) => p.content)).toEqual(['B', 'B, changed']);
    expect(rec.deletes()).toEqual([]);
  });

  it('with delete: true, a deleted file and a deleted directory (rm -r) are removed from the container', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'keep.txt': 'k', 'gone.txt': 'g', 'tree/a.txt': 'a', 'tree/deeper/b.txt': 'b', 'tree/deeper/c.txt': 'c' });
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror', delete: true }, { createTarget: rec.createTarget });
    await waitLanded(t, 'tree/deeper/c.txt', 'c');
    await waitLanded(t, 'gone.txt', 'g');
    expect(await boxTree(t)).toEqual(['gone.txt', 'keep.txt', 'tree/a.txt', 'tree/deeper/b.txt', 'tree/deeper/c.txt']);

    await unlink(path.join(s.dir, 'gone.txt'));
    await waitGone(landedPath(t, 'gone.txt'));
    await rm(path.join(s.dir, 'tree'), { recursive: true });
    // the directory itself goes, not only the files in it
    await waitGone(landedPath(t, 'tree'));
    await barrier(t, s.dir);
    expect(await boxTree(t)).toEqual(['keep.txt', 'zz-sentinel.txt']);
    expect(rec.deletes()).toContain('/srv/in/gone.txt');
    expect(rec.deletes().filter((d) => d.startsWith('/srv/in/tree')).length).toBeGreaterThan(0);
    expect(rec.deletes().every((d) => d === '/srv/in/gone.txt' || d.startsWith('/srv/in/tree'))).toBe(true);
  });

  it('with delete: true, a directory deleted and made again holds its new file, though the delete had to wait out a retry', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'd/old.txt': 'old' });
    // Deletes fail (a transient error, retried) until the new file's put is queued.
    const started: { agent?: TestAgent } = {};
    let deleteFailed: () => void = () => undefined;
    const failing = new Promise<void>((resolve) => (deleteFailed = resolve));
    const newQueued = () => started.agent?.logs.some((l) => l.msg === 'task queued' && l.dest === '/srv/in/d/new.txt') ?? false;
    const order: string[] = [];
    const createTarget = wrapTargets((real) =>
      createTestTarget({
        name: real.name,
        delegate: real,
        failItem(item) {
          if (item.op === 'delete' && !newQueued()) {
            // d's own delete: d/old.txt's may fail first, and d, made again then, would not go.
            if (item.dest === '/srv/in/d') deleteFailed();
            return 'TARGET_IO';
          }
          order.push(`${item.op} ${item.dest}`);
          return undefined;
        },
      }),
    );
    const retry = { attempts: 20, initial_delay: '100ms', max_delay: '100ms' };
    const t = (started.agent = await startWatching(s, { mode: 'mirror', delete: true, settle: '50ms', retry }, { createTarget }));
    await waitLanded(t, 'd/old.txt', 'old');

    await rm(path.join(s.dir, 'd'), { recursive: true });
    await failing;
    await writeTree(s.dir, { 'd/new.txt': 'new' });
    await barrier(t, s.dir);
    expect(await listTree(path.join(t.root, 'srv/in'))).toEqual(['d/new.txt', 'zz-sentinel.txt']);
    expect(await readFile(landedPath(t, 'd/new.txt'), 'utf8')).toBe('new');
    // The delete of d, accepted first, landed first.
    expect(order.indexOf('delete /srv/in/d')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('delete /srv/in/d')).toBeLessThan(order.indexOf('put /srv/in/d/new.txt'));
  });

  it('with delete: true, a file replaced by a directory of its name (and the other way round) lands as the new one', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'was-file': 'a file', 'was-dir/old.txt': 'old' });
    const t = await startWatching(s, { mode: 'mirror', delete: true });
    await waitLanded(t, 'was-file', 'a file');
    await waitLanded(t, 'was-dir/old.txt', 'old');

    await unlink(path.join(s.dir, 'was-file'));
    await writeTree(s.dir, { 'was-file/inner.txt': 'inner' });
    await rm(path.join(s.dir, 'was-dir'), { recursive: true });
    await writeFile(path.join(s.dir, 'was-dir'), 'a file now');
    await waitLanded(t, 'was-file/inner.txt', 'inner');
    await waitLanded(t, 'was-dir', 'a file now');
    await barrier(t, s.dir);
    expect(await boxTree(t)).toEqual(['was-dir', 'was-file/inner.txt', 'zz-sentinel.txt']);
    expect(t.logs.filter((l) => l.msg === 'task failed')).toEqual([]);
  });

  it('with delete: false, host deletes are not propagated', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'one.txt': '1', 'dir/two.txt': '2' });
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror', delete: false }, { createTarget: rec.createTarget });
    await waitLanded(t, 'one.txt', '1');
    await waitLanded(t, 'dir/two.txt', '2');
    await unlink(path.join(s.dir, 'one.txt'));
    await rm(path.join(s.dir, 'dir'), { recursive: true });
    await barrier(t, s.dir);
    expect(await boxTree(t)).toEqual(['dir/two.txt', 'one.txt', 'zz-sentinel.txt']);
    expect(rec.deletes()).toEqual([]);
  });

  it('a rename inside the tree pushes the new name and (delete: true) removes the old one', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'old-name.txt': 'renamed content', 'd1/x.txt': 'x', 'd1/sub/y.txt': 'y' });
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror', delete: true }, { createTarget: rec.createTarget });
    await waitLanded(t, 'old-name.txt', 'renamed content');
    await waitLanded(t, 'd1/sub/y.txt', 'y');

    await rename(path.join(s.dir, 'old-name.txt'), path.join(s.dir, 'new-name.txt'));
    await waitLanded(t, 'new-name.txt', 'renamed content');
    await waitGone(landedPath(t, 'old-name.txt'));

    await rename(path.join(s.dir, 'd1'), path.join(s.dir, 'd2'));
    await waitLanded(t, 'd2/x.txt', 'x');
    await waitLanded(t, 'd2/sub/y.txt', 'y');
    await waitGone(landedPath(t, 'd1'));
    await barrier(t, s.dir);
    expect(await boxTree(t)).toEqual(['d2/sub/y.txt', 'd2/x.txt', 'new-name.txt', 'zz-sentinel.txt']);
    expect(rec.puts('new-name.txt')).toHaveLength(1);
    expect(await exists(path.join(s.dir, 'new-name.txt'))).toBe(true);
  });

  it('an editor-style save (write a temp file, rename it over the original) pushes the new content, and delete: true does not remove it', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'doc.txt': 'version 1' });
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror', delete: true }, { createTarget: rec.createTarget });
    await waitLanded(t, 'doc.txt', 'version 1');
    await writeFile(path.join(s.dir, '.doc.txt.tmp'), 'version 2, saved');
    await rename(path.join(s.dir, '.doc.txt.tmp'), path.join(s.dir, 'doc.txt'));
    await waitLanded(t, 'doc.txt', 'version 2, saved');
    await barrier(t, s.dir);
    expect(await readFile(landedPath(t, 'doc.txt'), 'utf8')).toBe('version 2, saved');
    expect(rec.puts('doc.txt').map((p) => p.content)).toEqual(['version 1', 'version 2, saved']);
  });
});
