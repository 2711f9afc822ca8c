// What an earlier run left in state_dir/uploads, read back at start (records.ts):
// unfinished uploads with their bytes, finished ones without them, and the leftovers
// of a crash in between (a data file whose record was never written, a record's temp
// file, a data file whose upload had become a task) removed, as is any other file but
// a .json one. A .json not named by an upload id is not the agent's: it stays, and
// does not stop the agent from starting.
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createUploadFiles, type UploadRecord } from '../../src/ingest/tus/records.js';
import { newTaskId } from '../../src/task.js';
import { tempDir } from '../helpers/temp.js';

const record = (id: string, task?: string): UploadRecord => ({
  id, size: 10, metadata: { filename: 'f' }, route: 'files', target: 'box', dest: '/srv/files/f', anonymous: true, createdAt: '2026-01-01T00:00:00.000Z',
  options: { mode: 0o644, dirMode: 0o755, retry: { attempts: 1, initialDelay: 100, maxDelay: 100 }, pushTimeout: 1000 },
  ...(task ? { task } : {}),
});

describe('the resumable uploads found at start', () => {
  it('keeps unfinished and finished uploads, removes what a crash left, and leaves alone a .json that is not an upload\u2019s record', async () => {
    const dir = path.join(await tempDir(), 'uploads');
    const files = createUploadFiles(dir);
    await files.init();
    const [going, finished, finishedGone, noData, unreadable, orphan] = Array.from({ length: 6 }, () => newTaskId());
    const put = (name: string, text: string) => writeFile(path.join(dir, name), text);
    await put(`${going}.json`, JSON.stringify(record(going as string)));
    await put(`${going}.part`, 'seven b');
    await put(`${finished}.json`, JSON.stringify(record(finished as string, 'T'.repeat(22))));
    await put(`${finished}.part`, 'its bytes are a task now');
    await put(`${finishedGone}.json`, JSON.stringify(record(finishedGone as string, 'U'.repeat(22))));
    await put(`${noData}.json`, JSON.stringify(record(noData as string)));
    await put(`${unreadable}.json`, '{"id": "cut short');
    await put(`${unreadable}.part`, 'abc');
    await put(`${orphan}.part`, 'no record was written');
    await put(`${going}.json.Ab12Cd.tmp`, '{"id"');
    await put('notes.json', '{"mine": true}');
    await put('README', 'not the agent\u2019s');

    const warnings: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) });
    const loaded = await files.load(logger);
    const byId = Object.fromEntries(loaded.map(({ record: r, length }) => [r.id, { task: r.task, length }]));
    expect(byId).toEqual({
      [going as string]: { task: undefined, length: 7 },
      [finished as string]: { task: 'T'.repeat(22), length: 0 },
      [finishedGone as string]: { task: 'U'.repeat(22), length: 0 },
    });
    expect(warnings.map((w) => w.uploadId)).toEqual([unreadable]);
    expect((await readdir(dir)).sort()).toEqual([`${going}.json`, `${going}.part`, `${finished}.json`, `${finishedGone}.json`, 'notes.json'].sort());
  });
});
