// Drop folders: a settled file is pushed, then removed (or moved under after_push) —
// only once its push succeeded; a file that fails for good stays, with a dead-letter record.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StevedoreError } from '../../../src/errors.js';
import { failed } from '../../../src/targets/target.js';
import { noStrace, traceCalls } from '../../helpers/strace.js';
import { failingTarget, scriptedTarget } from '../../helpers/targets.js';
import { waitFor } from '../../helpers/wait.js';
import { DEST, exists, landedPath, listTree, setup, sleep, startWatching, waitGone, waitLanded, writeTree } from './harness.js';

describe('drop mode', () => {
  // Its copy in the spool is not flushed when staged (the host file stays until the
  // push); the local target lands that inode by a hard link, so it flushes it first:
  // after the host file's removal, the landed name is the only copy.
  it.skipIf(noStrace)('on a local target, the landed inode is flushed before it is linked, and the host file removed after', async () => {
    const s = await setup();
    const t = await startWatching(s);
    const calls = await traceCalls(['openat', 'fdatasync', 'link', 'linkat', 'unlink', 'unlinkat'], async () => {
      await writeTree(s.dir, { 'only-copy.txt': 'soon the only copy' });
      await waitLanded(t, 'only-copy.txt', 'soon the only copy');
      await waitGone(path.join(s.dir, 'only-copy.txt'));
    });
    const landed = JSON.stringify(landedPath(t, 'only-copy.txt'));
    const linked = calls.find((c) => (c.name === 'link' || c.name === 'linkat') && c.args.includes(landed));
    const staged = /"([^"]+\.staged)"/.exec(linked?.args ?? '')?.[1];
    expect(staged, JSON.stringify(linked)).toBeDefined();
    const opens = calls.filter((c) => c.name === 'openat' && c.args.includes(JSON.stringify(staged)) && /^\d+$/.test(c.result));
    const flushes = opens.flatMap((o) => calls.filter((c) => c.name === 'fdatasync' && c.args === o.result && c.start > o.end && c.end < (linked?.start ?? 0)));
    expect(flushes).toHaveLength(1);
    // Removed through the watch root's held descriptor: unlink("/proc/self/fd/N/only-copy.txt").
    const removed = calls.find((c) => c.name.startsWith('unlink') && c.args.includes('only-copy.txt"') && !c.args.includes(landed));
    expect(removed?.start).toBeGreaterThan(linked?.end ?? Infinity);
  });

  it('lands each file at dest/<relative path>, and removes the host file only after its push succeeded', async () => {
    const s = await setup();
    const files = { 'a.txt': 'alpha', 'sub/deep/b c é.txt': 'beta' };
    // What each push found on the host when it started; the first push of each file fails (transient).
    const hostAtPush: Record<string, boolean[]> = {};
    const tried = new Set<string>();
    const createTarget = scriptedTarget(async (items, signal, real) => {
      for (const item of items) {
        const rel = path.posix.relative(DEST, item.dest);
        (hostAtPush[rel] ??= []).push(await exists(path.join(s.dir, rel)));
      }
      const fresh = items.filter((item) => !tried.has(item.dest));
      items.forEach((item) => tried.add(item.dest));
      if (fresh.length > 0) return items.map(() => failed(new StevedoreError('TARGET_IO', 'scripted hiccup')));
      return real.push(items, signal);
    });
    const t = await startWatching(s, {}, { createTarget });
    await writeTree(s.dir, files);
    for (const [rel, content] of Object.entries(files)) {
      await waitLanded(t, rel, content);
      await waitGone(path.join(s.dir, rel));
    }
    // Both files were there at the failed push and at the retry that succeeded.
    expect(hostAtPush).toEqual({ 'a.txt': [true, true], 'sub/deep/b c é.txt': [true, true] });
    expect(await listTree(s.dir)).toEqual([]);
    const done = t.logs.filter((l) => l.msg === 'task done' && l.source === 'watch');
    expect(done.map((l) => l.dest).sort()).toEqual([`${DEST}/a.txt`, `${DEST}/sub/deep/b c é.txt`]);
    expect(done.every((l) => l.route === 'in' && l.attempts === 2)).toBe(true);
  });

  it('with after_push, moves pushed files there keeping their relative path', async () => {
    const s = await setup();
    const done = path.join(s.base, 'done');
    const files = { 'top.txt': 'top', 'x/y/nested.bin': 'nested', 'x/z.txt': 'zed' };
    const t = await startWatching(s, { after_push: done });
    await writeTree(s.dir, files);
    for (const [rel, content] of Object.entries(files)) await waitLanded(t, rel, content);
    await waitFor(async () => (await listTree(done)).length === 3, { what: 'all three files under after_push' });
    expect(await listTree(done)).toEqual(Object.keys(files).sort());
    for (const [rel, content] of Object.entries(files)) expect(await readFile(path.join(done, rel), 'utf8')).toBe(content);
    expect(await listTree(s.dir)).toEqual([]);
  });

  // rename() cannot cross filesystems (EXDEV): the pushed file is copied through its
  // descriptors there, then removed.
  it.skipIf(!existsSync('/dev/shm'))('with after_push on another filesystem, copies pushed files there whole, then removes them', async () => {
    const s = await setup();
    const done = await mkdtemp('/dev/shm/stevedore-done-');
    expect((await stat(done)).dev).not.toBe((await stat(s.dir)).dev);
    try {
      const big = randomBytes(3 * 2 ** 20 + 5).toString('base64'); // more than one 1 MiB block
      const t = await startWatching(s, { after_push: done });
      await writeTree(s.dir, { 'small.txt': 'small', 'sub/big.bin': big });
      await waitLanded(t, 'small.txt', 'small');
      await waitFor(async () => (await listTree(done)).length === 2, { what: 'both files under after_push' });
      await waitFor(async () => (await listTree(s.dir)).length === 0, { what: 'both host files removed' });
      expect(await readFile(path.join(done, 'small.txt'), 'utf8')).toBe('small');
      expect(await readFile(path.join(done, 'sub/big.bin'), 'utf8')).toBe(big);
      expect(await readFile(landedPath(t, 'sub/big.bin'), 'utf8')).toBe(big);
    } finally {
      await rm(done, { recursive: true, force: true });
    }
  });

  it('a file whose push fails for good stays where it was, with a dead-letter record (reason, task, data)', async () => {
    const s = await setup();
    const t = await startWatching(s, {}, { createTarget: failingTarget('PERMISSION_DENIED') });
    await writeTree(s.dir, { 'sub/refused.txt': 'refused content' });
    const host = path.join(s.dir, 'sub/refused.txt');
    const before = await stat(host);
    // `task failed` is logged once the watch has settled the task, dead-letter written.
    const failure = await waitFor(() => t.logs.find((l) => l.msg === 'task failed'), { timeoutMs: 10_000, what: 'the task to fail' });
    expect(failure).toMatchObject({ source: 'watch', route: 'in', dest: `${DEST}/sub/refused.txt`, error: { code: 'PERMISSION_DENIED' } });

    const entries = await readdir(path.join(t.stateDir, 'dead-letter'));
    expect(entries).toEqual([failure.taskId]);
    const entry = path.join(t.stateDir, 'dead-letter', String(failure.taskId));
    expect((await readdir(entry)).sort()).toEqual(['data', 'reason.txt', 'task.json']);
    expect(await readFile(path.join(entry, 'reason.txt'), 'utf8')).toMatch(/PERMISSION_DENIED/);
    const task = JSON.parse(await readFile(path.join(entry, 'task.json'), 'utf8')) as Record<string, unknown>;
    expect(task).toMatchObject({ id: failure.taskId, route: 'in', target: 'box', dest: `${DEST}/sub/refused.txt`, status: 'failed', bytes: 15, error: { code: 'PERMISSION_DENIED' } });
    expect(await readFile(path.join(entry, 'data'), 'utf8')).toBe('refused content');

    // The host file is untouched, nothing landed, and it is not taken up again.
    await sleep(500);
    const after = await stat(host);
    expect(await readFile(host, 'utf8')).toBe('refused content');
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: before.ino, mtimeMs: before.mtimeMs });
    expect(await exists(landedPath(t, 'sub/refused.txt'))).toBe(false);
    expect(t.logs.filter((l) => l.msg === 'task queued')).toHaveLength(1);
  });

  it('with poll: true (no inotify), files still land and go', async () => {
    const s = await setup();
    const t = await startWatching(s, { poll: true });
    await writeTree(s.dir, { 'polled.txt': 'polled', 'sub/too.txt': 'too' });
    await waitLanded(t, 'polled.txt', 'polled');
    await waitLanded(t, 'sub/too.txt', 'too');
    await waitGone(path.join(s.dir, 'polled.txt'));
    await waitGone(path.join(s.dir, 'sub/too.txt'));
  });

  it('with the queue at capacity, watched files wait for room and all land', async () => {
    const s = await setup();
    const files = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`q${i}.txt`, `queued ${i}`]));
    const t = await startWatching(s, {}, { queue: 'capacity: 1' });
    await writeTree(s.dir, files);
    for (const [rel, content] of Object.entries(files)) await waitLanded(t, rel, content, 20_000);
    await waitFor(async () => (await listTree(s.dir)).length === 0, { timeoutMs: 10_000, what: 'the drop folder to empty' });
    expect(t.logs.filter((l) => l.msg === 'task done')).toHaveLength(4);
  });
});
