// A watched folder's writer racing the agent for real: a directory of the folder is
// swapped with a symlink to a directory outside it (renameat2 RENAME_EXCHANGE in a tight
// loop) while files keep arriving in it. Outside lie files of the same names, sizes and
// mtimes. Nothing outside may be read into the container, removed, or moved, and every
// file of the folder still lands once the race ends.
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { DEST, listTree, setup, sleep, startWatching, waitLanded } from '../ingest/watch/harness.js';
import { race } from './race.js';

const SECONDS = 5;
// Between swaps: flat out, the swaps' own events kept the agent of the seed too busy to
// stage anything until the race ended, which hid the race (see racer.py).
const PAUSE_US = 100;
const TRIALS = 50;
const STAMP = new Date('2020-01-02T03:04:05Z');
const name = (i: number) => `f${String(i).padStart(3, '0')}.txt`;
// Same length, so that a victim has the very size of the decoy the agent read.
const decoy = (i: number) => `decoy ${name(i)} `.padEnd(48, '.');
const secret = (i: number) => `SECRET ${name(i)}`.padEnd(48, '.');

const REFUSED = new Set([
  'skipping a symlink that leads outside the watched directory',
  'skipping a path through a symlink: a drop folder follows none',
]);

// Nothing from outside reached the container, and outside is as it was.
async function expectOutsideUntouched(root: string, outside: string): Promise<void> {
  const landed = await listTree(path.join(root, DEST));
  const contents = await Promise.all(landed.map((rel) => readFile(path.join(root, DEST, rel), 'utf8')));
  expect(contents.filter((text) => text.includes('SECRET'))).toEqual([]);
  expect(await listTree(outside)).toEqual(Array.from({ length: TRIALS }, (_, i) => name(i)));
  for (let i = 0; i < TRIALS; i += 1) expect(await readFile(path.join(outside, name(i)), 'utf8')).toBe(secret(i));
}

describe('a directory of the folder swapped for a symlink to outside, in a loop', () => {
  it.each([
    { mode: 'drop', afterPush: false },
    { mode: 'drop', afterPush: true },
    { mode: 'mirror', afterPush: false },
  ])('$mode (after_push: $afterPush): nothing outside is read, removed or moved; every file lands', async ({ mode, afterPush }) => {
    const s = await setup();
    const outside = path.join(s.base, 'outside');
    const real = path.join(s.dir, 'd');
    const link = path.join(s.dir, '.l'); // a dotfile: the watch ignores the link's own name
    const done = path.join(s.base, 'done');
    await mkdir(outside);
    await mkdir(real);
    await symlink(outside, link);
    for (let i = 0; i < TRIALS; i += 1) {
      await writeFile(path.join(outside, name(i)), secret(i), { mode: 0o600 });
      await utimes(path.join(outside, name(i)), STAMP, STAMP);
    }
    const t = await startWatching(s, { mode, settle: '50ms', ...(afterPush ? { after_push: done } : {}) });
    // The test writes into the real directory whatever name it has at the instant.
    const dir = await open(real, constants.O_RDONLY | constants.O_DIRECTORY);
    onTestFinished(() => dir.close());

    const racing = race('exchange', [[real, link]], SECONDS, PAUSE_US);
    for (let i = 0; i < TRIALS; i += 1) {
      const file = `/proc/self/fd/${dir.fd}/${name(i)}`;
      await writeFile(file, decoy(i));
      await utimes(file, STAMP, STAMP);
      await sleep((SECONDS * 1000 * 0.8) / TRIALS);
    }
    const swaps = await racing;
    const raceOver = Date.now();
    expect((await lstat(real)).isDirectory()).toBe(true);
    await sleep(500);
    await expectOutsideUntouched(t.root, outside);

    for (let i = 0; i < TRIALS; i += 1) await waitLanded(t, `d/${name(i)}`, decoy(i), 30_000);
    if (mode === 'drop') {
      await waitFor(async () => (await listTree(real)).length === 0, { timeoutMs: 30_000, what: 'the drop folder to empty' });
    }
    if (afterPush) {
      await waitFor(async () => (await listTree(path.join(done, 'd'))).length === TRIALS, { timeoutMs: 30_000, what: 'every file under after_push' });
      for (let i = 0; i < TRIALS; i += 1) expect(await readFile(path.join(done, 'd', name(i)), 'utf8')).toBe(decoy(i));
    }
    const settledAfter = Date.now() - raceOver;

    await expectOutsideUntouched(t.root, outside);

    const refused = t.logs.filter((l) => REFUSED.has(String(l.msg))).length;
    const blocked = t.logs.filter((l) => String(l.msg).startsWith('a directory on the way is a symlink for now')).length;
    const keptForNow = t.logs.filter((l) => String(l.msg).startsWith('left a pushed file in place for now')).length;
    const pushes = t.logs.filter((l) => l.msg === 'task done').length;
    // eslint-disable-next-line no-console -- each race prints what it tried and what happened
    console.log(
      `watch race (${mode}${afterPush ? ', after_push' : ''}): ${swaps} swaps in ${SECONDS}s, ${TRIALS} files; ` +
        `${refused + blocked} reads refused (${blocked} put off until the path is sane again), ${keptForNow} removals put off, ${pushes} pushes; ` +
        `0 outside read, removed or moved; all landed ${settledAfter} ms after the race`,
    );
  }, 90_000);
});
