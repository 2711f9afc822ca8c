// Edge cases found in review: symlinks in a drop folder, `rm -r` of a mirrored folder
// itself, a folder that comes back under `initial: false`, and after_push around it.
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { waitFor } from '../../helpers/wait.js';
import { barrier, exists, landedPath, listTree, recorder, setup, startWatching, waitLanded, writeTree } from './harness.js';

describe('watch edges', () => {
  it('a drop folder skips symlinks: the link and its target stay consistent', async () => {
    const s = await setup();
    const t = await startWatching(s);
    await writeFile(path.join(s.dir, 'real.txt'), 'real');
    await waitLanded(t, 'real.txt', 'real');
    await writeFile(path.join(s.base, 'outside-real.txt'), 'elsewhere');
    await symlink(path.join(s.base, 'outside-real.txt'), path.join(s.dir, 'link.txt'));
    await barrier(t, s.dir);
    expect(await exists(landedPath(t, 'link.txt'))).toBe(false);
    expect(await exists(path.join(s.dir, 'link.txt'))).toBe(true);
  });

  it('rm -r of the mirrored folder itself does not empty the container', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'a.txt': 'a', 'sub/b.txt': 'b' });
    const rec = recorder();
    const t = await startWatching(s, { mode: 'mirror', delete: true }, { createTarget: rec.createTarget });
    await waitLanded(t, 'sub/b.txt', 'b');
    await waitLanded(t, 'a.txt', 'a');
    await rm(s.dir, { recursive: true });
    await waitFor(() => t.agent.watches[0]?.status().state === 'missing', { what: 'the watch to see the folder gone' });
    // Longer than settle: a delete queued for the unlinks would have run by now.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(rec.deletes()).toEqual([]);
    expect(await listTree(path.join(t.root, 'srv/in'))).toEqual(['a.txt', 'sub/b.txt']);
  });

  it('a folder that comes back is pushed whole, even with initial: false', async () => {
    const s = await setup();
    const t = await startWatching(s, { initial: false });
    await rm(s.dir, { recursive: true });
    await waitFor(() => t.agent.watches[0]?.status().state === 'missing', { what: 'the watch to see the folder gone' });
    await mkdir(s.dir);
    await writeFile(path.join(s.dir, 'early.txt'), 'written before the watch came back');
    await waitLanded(t, 'early.txt', 'written before the watch came back');
  });

  it('after_push that contains the watched folder is a config error', async () => {
    const s = await setup();
    const file = path.join(s.base, 'c.yaml');
    await writeFile(file, ['version: 1', 'targets: { box: { runtime: local, root: ./box } }', 'watch:', `  - { name: w, path: ${s.dir}, target: box, dest: /d, after_push: ${s.base} }`, ''].join('\n'));
    await expect(loadConfig(file, {})).rejects.toThrow(`watch.0.after_push: must not be inside, or contain, the watched directory ${s.dir}`);
  });
});
