// The host-side notes of container staging directories, on a real directory: what one
// run leaves, the next reads; a note cut mid-write is dropped.
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createStagingLedger } from '../../src/targets/ledger.js';
import { tempDir } from '../helpers/temp.js';

describe('the staging ledger', () => {
  it('keeps what a killed run noted for the next one, per target, and forgets what was cleared', async () => {
    const dir = path.join(await tempDir(), 'staging-notes');
    const first = createStagingLedger(dir);
    await first.open();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    await first.note('web', { tag: 'aaa', where: 'c1', dirs: ['/srv/a', '/srv/b'] });
    await first.note('web', { tag: 'bbb', where: 'c1', dirs: ['/srv/c'] });
    await first.note('db', { tag: 'ccc', where: 'c2', dirs: ['/var/lib'] });
    await first.clear('web', 'bbb');
    expect(first.leftovers('web')).toEqual([]); // this run's notes are not leftovers until left

    const next = createStagingLedger(dir); // the agent was killed: a new run reads the notes
    await next.open();
    expect(next.leftovers('web')).toEqual([{ tag: 'aaa', where: 'c1', dirs: ['/srv/a', '/srv/b'] }]);
    expect(next.targets().sort()).toEqual(['db', 'web']);
    await next.clear('web', 'aaa');
    expect(next.leftovers('web')).toEqual([]);
    expect(next.targets()).toEqual(['db']);
    expect(await readdir(dir)).toEqual(['ccc.json']);
  });

  it('makes a batch that ended without removing its directories a leftover of this run', async () => {
    const ledger = createStagingLedger(await tempDir());
    await ledger.open();
    const note = { tag: 'ddd', where: 'c1', dirs: ['/srv'] };
    await ledger.note('web', note);
    ledger.leave('web', note);
    expect(ledger.leftovers('web')).toEqual([note]);
  });

  it('drops a note cut while it was written (its batch never started)', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'cut.json'), '{"target":"web","di');
    const ledger = createStagingLedger(dir);
    await ledger.open();
    expect(ledger.targets()).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a tag that would be a path', async () => {
    const ledger = createStagingLedger(await tempDir());
    await ledger.open();
    await expect(ledger.note('web', { tag: '../escape', where: 'c1', dirs: [] })).rejects.toThrow(/not a staging tag/);
  });

  it('never fails a push for a note it cannot write: says so once, and once when notes are written again', async () => {
    const dir = path.join(await tempDir(), 'notes');
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => done(void lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)) });
    const ledger = createStagingLedger(dir, createLogger({ level: 'info', format: 'json' }, sink));
    await ledger.open();
    await rm(dir, { recursive: true });
    await writeFile(dir, 'a file where the directory was: every write fails (ENOTDIR)');
    await ledger.note('web', { tag: 'e1', where: 'c1', dirs: ['/srv'] });
    await ledger.note('web', { tag: 'e2', where: 'c1', dirs: ['/srv'] });
    await ledger.clear('web', 'e1');
    await rm(dir);
    await mkdir(dir);
    await ledger.note('web', { tag: 'e3', where: 'c1', dirs: ['/srv'] });
    expect(lines.map((line) => line.msg)).toEqual([
      expect.stringMatching(/^cannot write staging notes \(.*ENOTDIR.*\): pushes go on/),
      'staging notes are written again',
    ]);
    expect(await readdir(dir)).toEqual(['e3.json']);
  });
});
