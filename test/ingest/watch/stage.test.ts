// stageFile through a real intake (spool, journal, queue): a watched file that is not
// the version that settled any more (written to since: the same inode and size, a new
// mtime; or another inode under its name) is not queued, and leaves nothing behind: no
// staged copy, no journal line, no queue slot held.
import { mkdir, open, readdir, rename, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createIntake } from '../../../src/ingest/intake.js';
import { stageFile, versionOf, type StageArgs, type Version } from '../../../src/ingest/watch/stage.js';
import { createLogger } from '../../../src/log.js';
import { createOutOfFilesAlarm } from '../../../src/open-files.js';
import { createRegistry } from '../../../src/queue/registry.js';
import { createScheduler } from '../../../src/queue/scheduler.js';
import { createJournal } from '../../../src/spool/journal.js';
import { createSpool } from '../../../src/spool/spool.js';
import { createStateDir } from '../../../src/spool/state-dir.js';
import { tempDir } from '../../helpers/temp.js';

const logger = createLogger({ level: 'silent', format: 'json' });

async function setUp() {
  const dir = await tempDir();
  const spool = createSpool(path.join(dir, 'state', 'spool'));
  await spool.init();
  const journal = createJournal({ file: path.join(dir, 'state', 'journal.log'), syncDirs: [spool.dir], logger });
  await journal.open();
  onTestFinished(() => journal.close());
  const scheduler = createScheduler({
    concurrency: 1, perTarget: 1, capacity: 10, batchFiles: 10, batchBytes: 2 ** 20, logger, registry: createRegistry({ logger }),
    // No target: a queued task waits (TARGET_DOWN) and its staged file stays.
    getTarget: () => undefined, sourcePath: (task) => spool.path(task.staged), settle: async () => undefined,
  });
  onTestFinished(() => scheduler.close(0));
  const stateDir = createStateDir({ dir: path.join(dir, 'state'), subdirs: [spool.dir], journal, logger });
  onTestFinished(() => stateDir.close());
  const intake = createIntake({ spool, journal, stateDir, scheduler, minFree: 0, isClosing: () => false });
  const folder = path.join(dir, 'in');
  await mkdir(folder);
  const stage = (rel: string, stats: Version) =>
    stageFile({
      file: path.join(folder, rel), rel, stats, intake, log: logger,
      open: () => open(path.join(folder, rel), 'r'),
      accepted: { source: 'watch', route: 'w', target: 'box', dest: `/srv/${rel}`, options: { mode: 0o644, dirMode: 0o755, retry: { attempts: 1, initialDelay: 10, maxDelay: 10 }, pushTimeout: 1000 } },
      noRoom: () => undefined, refused: () => undefined, outOfFiles: createOutOfFilesAlarm(logger),
    } satisfies StageArgs);
  const left = async () => ({ staged: (await readdir(spool.dir)).length, live: journal.liveCount, slots: scheduler.size });
  return { folder, stage, left };
}

describe('stageFile', () => {
  // 1000 bytes: gathered and written in one call; 300 KiB: streamed into the spool.
  it.each([1000, 300 * 1024])('a %i-byte file written to since it settled (same inode and size) is not queued and leaves nothing', async (size) => {
    const s = await setUp();
    const file = path.join(s.folder, 'f.bin');
    await writeFile(file, Buffer.alloc(size, 'a'));
    const settled = versionOf(await stat(file));
    await writeFile(file, Buffer.alloc(size, 'b'));
    await utimes(file, new Date(), new Date(settled.mtimeMs + 5000));
    expect((await stat(file)).ino).toBe(settled.ino);

    expect(await s.stage('f.bin', settled)).toBe('changed');
    expect(await s.left()).toEqual({ staged: 0, live: 0, slots: 0 });

    // The version as it is now is queued: staged, journaled, holding its slot.
    expect(await s.stage('f.bin', versionOf(await stat(file)))).toBe('queued');
    expect(await s.left()).toEqual({ staged: 1, live: 1, slots: 1 });
  });

  it('a file replaced by another inode since it settled is not queued and leaves nothing', async () => {
    const s = await setUp();
    const file = path.join(s.folder, 'f.bin');
    // The same size and mtime (whole seconds, which utimes sets exactly): only the inode tells.
    const second = Math.floor(Date.now() / 1000);
    await writeFile(file, 'first');
    await utimes(file, second, second);
    const settled = versionOf(await stat(file));
    await writeFile(`${file}.new`, 'other');
    await utimes(`${file}.new`, second, second);
    await rename(`${file}.new`, file);
    expect(await s.stage('f.bin', settled)).toBe('changed');
    expect(await s.left()).toEqual({ staged: 0, live: 0, slots: 0 });
  });
});
