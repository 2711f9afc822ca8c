// A mirror's state file (state_dir/watch/<name>.json): what was pushed, and where.
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMirrorState } from '../../../src/ingest/watch/mirror-state.js';
import { tempDir } from '../../helpers/temp.js';

const place = { target: 'box', dest: '/srv/m' };
const version = (size: number) => ({ size, mtimeMs: 1, sha256: 'a'.repeat(64) });

describe('the mirror state', () => {
  it('a save that failed (state_dir full, read-only) does not stop the next ones, nor close()', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'watch', 'm.json');
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const state = createMirrorState(file, place, logger);
    await state.load();
    // A directory where the file goes: the rename fails (EISDIR), as a full disk would fail it.
    await mkdir(file, { recursive: true });
    state.set('a.txt', version(1));
    await state.save();
    expect(lines.map((l) => l.msg)).toEqual([expect.stringMatching(/could not save/)]);

    await rm(file, { recursive: true });
    state.set('b.txt', version(2));
    await state.save();
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ ...place, files: { 'a.txt': version(1), 'b.txt': version(2) } });
    state.set('c.txt', version(3));
    await state.close();
    expect(Object.keys((JSON.parse(await readFile(file, 'utf8')) as { files: object }).files)).toEqual(['a.txt', 'b.txt', 'c.txt']);
  });

  it('is not used for another dest or target: those files were not pushed there', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'm.json');
    const state = createMirrorState(file, place, pino({ level: 'silent' }));
    state.set('a.txt', version(1));
    await state.close();
    for (const [other, expected] of [[place, ['a.txt']], [{ ...place, dest: '/srv/n' }, []], [{ ...place, target: 'other' }, []]] as const) {
      const again = createMirrorState(file, other, pino({ level: 'silent' }));
      await again.load();
      expect([...again.paths()]).toEqual(expected);
    }
  });
});
