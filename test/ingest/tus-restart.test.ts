// A resumable upload whose bytes became a task, but whose record did not say so when
// the agent stopped: finish.ts links the data file into the spool as the task's staged
// file, journals the task, and only then saves the record and removes the data file.
// The agent killed in between, or the record not saved (logged: "its record could not
// say so"), leaves a record without its task and a data file that is the same inode as
// the staged file, and as the file the local target landed through a hard link. After
// a restart the client is told it is one byte short and sends that byte again; a PATCH
// there must not write into, or cut back, the bytes the task delivered.
import { link, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { tempDir } from '../helpers/temp.js';
import { createUpload, headUpload, patchUpload } from '../helpers/tus.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 's3cret-token';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('a resumable upload that became a task just before the agent stopped', () => {
  it('takes its last byte again without touching the bytes already landed through its data file', async () => {
    const dir = await tempDir();
    const data = Buffer.from('the first version of a file that was landed whole\n');
    const first = await startAgent({ dir });
    const created = await createUpload(first.url, '/drop/secret', data.length, { name: 'twice.txt', token: TOKEN });
    expect(created.status).toBe(201);
    const location = new URL(String(created.headers.location), first.url).pathname;
    expect((await patchUpload(first.url, location, 0, data.subarray(0, -1), auth)).status).toBe(204);
    await first.close();

    // What the stop left: the last byte written, the data file landed by a hard link
    // (its task pushed), the record still without its task.
    const part = path.join(dir, 'state/uploads', `${path.posix.basename(location)}.part`);
    await writeFile(part, data.subarray(-1), { flag: 'a' });
    const landed = path.join(dir, 'box/srv/secret/twice.txt');
    await mkdir(path.dirname(landed), { recursive: true });
    await link(part, landed);
    expect((await stat(landed)).nlink).toBe(2);

    const second = await startAgent({ dir });
    expect((await headUpload(second.url, location, auth)).offset).toBe(data.length - 1);
    // A PATCH with no byte (as one cut by its client before its body) ends the file at its offset.
    const empty = await patchUpload(second.url, location, data.length - 1, '', auth);
    expect(empty.status).toBe(204);
    expect(await readFile(landed)).toEqual(data);

    // The last byte sent again: a second task, the same bytes, landed whole.
    const last = await patchUpload(second.url, location, data.length - 1, data.subarray(-1), auth);
    expect(last.status).toBe(204);
    expect(last.headers['upload-offset']).toBe(String(data.length));
    await waitFor(() => second.logs.some((line) => line.msg === 'task done'), { what: 'the second task to be pushed' });
    expect(await readFile(landed)).toEqual(data);
    expect(await stat(part).catch(() => undefined)).toBeUndefined();
  });
});
