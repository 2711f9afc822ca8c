// Start and restart: drop with `initial: true` pushes what is already there; mirror
// reconciles against its state file, so a restart pushes only what changed meanwhile.
import { readdir, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { failingTarget, scriptedTarget } from '../../helpers/targets.js';
import { waitFor } from '../../helpers/wait.js';
import { barrier, exists, landedPath, listTree, readOrUndefined, recorder, setup, sleep, startWatching, waitGone, waitIdle, waitLanded, writeTree } from './harness.js';

const boxTree = (t: { root: string }) => listTree(path.join(t.root, 'srv/in'));

describe('initial scan, drop mode', () => {
  it('initial: true pushes (and removes) what is already in the folder', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'waiting.txt': 'w', 'sub/also.txt': 'a' });
    const t = await startWatching(s, { initial: true });
    await waitLanded(t, 'waiting.txt', 'w');
    await waitLanded(t, 'sub/also.txt', 'a');
    await waitGone(path.join(s.dir, 'waiting.txt'));
    await waitGone(path.join(s.dir, 'sub/also.txt'));
  });

  it('initial: false leaves what is already there alone and pushes only what comes later', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'waiting.txt': 'w', 'sub/also.txt': 'a' });
    const rec = recorder();
    const t = await startWatching(s, { initial: false }, { createTarget: rec.createTarget });
    await sleep(400); // past settle: they would have been pushed by now
    await barrier(t, s.dir);
    expect(rec.pushes.map((p) => p.dest)).toEqual(['/srv/in/zz-sentinel.txt']);
    expect(await listTree(s.dir)).toEqual(['sub/also.txt', 'waiting.txt']);
  });
});

describe('restart, drop mode', () => {
  it('a file queued but not yet pushed when the agent stopped is pushed once after the restart, then removed', async () => {
    const s = await setup();
    // First run: the target is down, so the task waits in the journal.
    const t1 = await startWatching(s, {}, { createTarget: failingTarget('TARGET_DOWN') });
    await writeTree(s.dir, { 'pending.txt': 'pending' });
    await waitFor(() => t1.logs.some((l) => l.msg === 'task retrying'), { what: 'the push to find the target down' });
    await t1.close();
    expect(await readOrUndefined(path.join(s.dir, 'pending.txt'))).toBe('pending');

    const rec = recorder();
    const t2 = await startWatching(s, {}, { createTarget: rec.createTarget });
    await waitLanded(t2, 'pending.txt', 'pending');
    await waitGone(path.join(s.dir, 'pending.txt'));
    await barrier(t2, s.dir);
    // the journaled task, not a second one staged from the initial scan
    expect(rec.puts('pending.txt')).toHaveLength(1);
    expect(t2.logs.filter((l) => l.msg === 'task queued' && l.dest === '/srv/in/pending.txt')).toHaveLength(1);
  });
});

describe('restart after a crash cut a watched file\'s spool copy', () => {
  it('the copy is staged again from the host file, not dead-lettered', async () => {
    const s = await setup();
    const t1 = await startWatching(s, { initial: false }, { createTarget: failingTarget('TARGET_DOWN') });
    await writeTree(s.dir, { 'cut.txt': 'the whole content' });
    await waitFor(() => t1.logs.some((l) => l.msg === 'task retrying'), { what: 'the task to be journaled and tried' });
    await t1.close();
    // What a crash can leave: the copy was not flushed, only the journal line was.
    const spool = path.join(t1.stateDir, 'spool');
    const [staged] = await readdir(spool);
    await truncate(path.join(spool, String(staged)), 3);

    const rec = recorder();
    const t2 = await startWatching(s, { initial: false }, { createTarget: rec.createTarget });
    await waitLanded(t2, 'cut.txt', 'the whole content');
    await waitGone(path.join(s.dir, 'cut.txt'));
    expect(await readdir(path.join(t2.stateDir, 'dead-letter'))).toEqual([]);
    expect(rec.puts('cut.txt').map((p) => p.content)).toEqual(['the whole content']);
  });
});

describe('mirror reconcile across a restart', () => {
  it('pushes exactly what changed while the agent was away, deletes what went, and nothing on an unchanged restart', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'same.txt': 'same', 'change.txt': 'before', 'drop.txt': 'dropped', 'sub/deep.txt': 'deep' });
    const watch = { mode: 'mirror', delete: true, initial: true };

    // First run: the whole tree. Stopped as soon as it has landed, the way an operator would.
    const rec1 = recorder();
    const t1 = await startWatching(s, watch, { createTarget: rec1.createTarget });
    for (const [rel, content] of Object.entries({ 'same.txt': 'same', 'change.txt': 'before', 'drop.txt': 'dropped', 'sub/deep.txt': 'deep' })) {
      await waitLanded(t1, rel, content);
    }
    await t1.close();
    expect(rec1.pushes).toHaveLength(4);

    // While it is down: one file changed, one added, one deleted.
    await writeFile(path.join(s.dir, 'change.txt'), 'after, and longer');
    await writeTree(s.dir, { 'sub/added.txt': 'added' });
    await unlink(path.join(s.dir, 'drop.txt'));

    const rec2 = recorder();
    const t2 = await startWatching(s, watch, { createTarget: rec2.createTarget });
    await waitLanded(t2, 'change.txt', 'after, and longer');
    await waitLanded(t2, 'sub/added.txt', 'added');
    await waitGone(landedPath(t2, 'drop.txt'));
    await barrier(t2, s.dir, 'zz-sentinel-2.txt');
    expect(rec2.pushes.filter((p) => p.op === 'put').map((p) => p.dest).sort()).toEqual(['/srv/in/change.txt', '/srv/in/sub/added.txt', '/srv/in/zz-sentinel-2.txt']);
    expect(rec2.deletes()).toEqual(['/srv/in/drop.txt']);
    expect(await boxTree(t2)).toEqual(['change.txt', 'same.txt', 'sub/added.txt', 'sub/deep.txt', 'zz-sentinel-2.txt']);
    await t2.close();

    // Nothing changed: nothing is pushed but the new sentinel.
    const rec3 = recorder();
    const t3 = await startWatching(s, watch, { createTarget: rec3.createTarget });
    await barrier(t3, s.dir, 'zz-sentinel-3.txt');
    expect(rec3.pushes.map((p) => `${p.op} ${p.dest}`)).toEqual(['put /srv/in/zz-sentinel-3.txt']);
    expect(await exists(path.join(t3.stateDir, 'watch', 'in.json'))).toBe(true);
  });

  it('a directory removed or renamed while the agent was away goes from the container whole, not left there empty', async () => {
    const s = await setup();
    const files = { 'gone/sub/a.txt': 'a', 'gone/b.txt': 'b', 'moved/c.txt': 'c', 'kept/d.txt': 'd', 'kept/old/e.txt': 'e' };
    await writeTree(s.dir, files);
    const watch = { mode: 'mirror', delete: true, initial: true };
    const t1 = await startWatching(s, watch);
    for (const [rel, content] of Object.entries(files)) await waitLanded(t1, rel, content);
    await waitIdle(t1);
    await t1.close();

    await rm(path.join(s.dir, 'gone'), { recursive: true });
    await rename(path.join(s.dir, 'moved'), path.join(s.dir, 'renamed'));
    await rm(path.join(s.dir, 'kept/old'), { recursive: true });
    const rec = recorder();
    const t2 = await startWatching(s, watch, { createTarget: rec.createTarget });
    await waitLanded(t2, 'renamed/c.txt', 'c');
    const box = path.join(t2.root, 'srv/in');
    for (const dir of ['gone', 'moved', 'kept/old']) await waitGone(path.join(box, dir));
    await barrier(t2, s.dir);
    expect(rec.deletes().sort()).toEqual(['/srv/in/gone', '/srv/in/kept/old', '/srv/in/moved']);
    expect((await readdir(box)).sort()).toEqual(['kept', 'renamed', 'zz-sentinel.txt']);
    expect(await readdir(path.join(box, 'kept'))).toEqual(['d.txt']);
  });

  it('a file that became a directory while the agent was away (and the other way round) lands as the new one at the next start', async () => {
    const s = await setup();
    // Many other deletes, recorded (and so reconciled) before the two that matter.
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`keep/gone-${i}.txt`, `${i}`]));
    await writeTree(s.dir, { ...many, 'keep/stays.txt': 'stays' });
    const watch = { mode: 'mirror', delete: true, initial: true };
    const t1 = await startWatching(s, watch);
    await waitLanded(t1, 'keep/gone-299.txt', '299');
    await waitIdle(t1);
    await writeTree(s.dir, { 'was-file': 'a file', 'was-dir/old.txt': 'old' });
    await waitLanded(t1, 'was-file', 'a file');
    await waitLanded(t1, 'was-dir/old.txt', 'old');
    await waitIdle(t1);
    await t1.close();

    for (const rel of Object.keys(many)) await unlink(path.join(s.dir, rel));
    await unlink(path.join(s.dir, 'was-file'));
    await writeTree(s.dir, { 'was-file/inner.txt': 'inner' });
    await rm(path.join(s.dir, 'was-dir'), { recursive: true });
    await writeFile(path.join(s.dir, 'was-dir'), 'a file now');
    const t2 = await startWatching(s, watch);
    await waitLanded(t2, 'was-file/inner.txt', 'inner');
    await waitLanded(t2, 'was-dir', 'a file now');
    await barrier(t2, s.dir);
    expect(await boxTree(t2)).toEqual(['keep/stays.txt', 'was-dir', 'was-file/inner.txt', 'zz-sentinel.txt']);
    expect(t2.logs.filter((l) => l.msg === 'task failed')).toEqual([]);
  });

  it('a restart right after pushes settle (state saved on close) pushes nothing again', async () => {
    const s = await setup();
    const files = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, `file ${i}`]));
    await writeTree(s.dir, files);
    const watch = { mode: 'mirror', initial: true };
    const t1 = await startWatching(s, watch);
    for (const [rel, content] of Object.entries(files)) await waitLanded(t1, rel, content);
    await waitIdle(t1);
    await t1.close();

    const rec = recorder();
    const t2 = await startWatching(s, watch, { createTarget: rec.createTarget });
    await barrier(t2, s.dir);
    expect(rec.pushes.map((p) => p.dest)).toEqual(['/srv/in/zz-sentinel.txt']);
  });

  it('a push that finishes while the agent stops is remembered: the next start does not push it again', async () => {
    const s = await setup();
    await writeTree(s.dir, { 'late.txt': 'late' });
    const watch = { mode: 'mirror', initial: true };
    // The file lands, but the push answers only a moment later: the stop comes in between.
    const slowToAnswer = scriptedTarget(async (items, signal, real) => {
      const results = await real.push(items, signal);
      await sleep(300);
      return results;
    });
    const t1 = await startWatching(s, watch, { createTarget: slowToAnswer });
    await waitLanded(t1, 'late.txt', 'late');
    await t1.close(); // lets the push in flight finish (shutdown_grace)
    expect(t1.logs.filter((l) => l.msg === 'task done')).toHaveLength(1);

    const rec = recorder();
    const t2 = await startWatching(s, watch, { createTarget: rec.createTarget });
    await barrier(t2, s.dir);
    expect(rec.pushes.map((p) => p.dest)).toEqual(['/srv/in/zz-sentinel.txt']);
  });
});
