import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { waitFor } from '../helpers/wait.js';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe('raw upload', () => {
  it('answers 202 with the task, then lands the file under the route dest', async () => {
    const t = await startAgent();
    const res = await fetch(`${t.url}/drop/files/a/b%20c.txt`, { method: 'PUT', body: 'hello' });
    expect(res.status).toBe(202);
    const task = (await res.json()) as Record<string, unknown>;
    expect(res.headers.get('location')).toBe(`/tasks/${String(task.id)}`);
    expect(task).toMatchObject({ route: 'files', target: 'box', dest: '/srv/files/a/b c.txt', bytes: 5, sha256: sha256('hello') });
    const landed = path.join(t.root, 'srv/files/a/b c.txt');
    await waitFor(() => stat(landed).then(() => true, () => false), { what: 'the file to land' });
    expect(await readFile(landed, 'utf8')).toBe('hello');
    expect((await stat(landed)).mode & 0o777).toBe(0o644);
    const done = await waitFor(async () => {
      const body = (await (await fetch(`${t.url}/tasks/${String(task.id)}`)).json()) as Record<string, unknown>;
      return body.status === 'done' ? body : undefined;
    });
    expect(done.attempts).toBe(1);
    await waitFor(async () => (await readdir(path.join(t.stateDir, 'spool'))).length === 0, { what: 'the staged file to go' });
  });
});
