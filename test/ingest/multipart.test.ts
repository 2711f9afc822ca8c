// POST <route>/<dir> with multipart/form-data: one task per file part, all or nothing.
// Bodies are built by hand where the exact bytes matter, with FormData where they don't.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectError, expectNoTrace, fromFetch, json, open, queuedCount, send, settled, spoolFiles, type Answer } from '../helpers/http.js';
import { gatedTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const BOUNDARY = 'stevedore-test-boundary';
const FORM = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };

interface Part {
  name?: string;
  filename?: string;
  content: string | Buffer;
}

function partHead({ name = 'file', filename }: Omit<Part, 'content'>): string {
  const file = filename === undefined ? '' : `; filename="${filename}"`;
  const type = filename === undefined ? '' : '\r\nContent-Type: application/octet-stream';
  return `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"${file}${type}\r\n\r\n`;
}

/** A complete multipart body; `end: false` leaves out the closing delimiter. */
function multipart(parts: Part[], { end = true } = {}): Buffer {
  const pieces = parts.flatMap((part) => [Buffer.from(partHead(part)), Buffer.from(part.content), Buffer.from('\r\n')]);
  return Buffer.concat([...pieces, Buffer.from(end ? `--${BOUNDARY}--\r\n` : '')]);
}

const post = (t: TestAgent, rawPath: string, body: Buffer, headers: Record<string, string> = {}) =>
  send(t.url, rawPath, { method: 'POST', headers: { ...FORM, ...headers }, body });

const tasksOf = (answer: Answer) => json<{ tasks: Record<string, unknown>[] }>(answer).tasks;

async function expectLanded(t: TestAgent, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(t.root, rel);
    await waitFor(() => readFile(file, 'utf8').then((text) => text === content, () => false), { what: `${rel} to land` });
  }
}

describe('multipart uploads', () => {
  it('answers 202 with one task per file part, landing under dest/dir (FormData + Blob over fetch)', async () => {
    const t = await startAgent();
    const form = new FormData();
    form.append('first', new Blob(['alpha']), 'a.txt');
    form.append('comment', 'a plain field, not a file');
    form.append('second', new Blob([Buffer.from([0, 1, 2, 255])]), 'b.bin');
    const answer = await fromFetch(await fetch(`${t.url}/drop/files/up`, { method: 'POST', body: form }));
    expect(answer.status).toBe(202);
    const tasks = tasksOf(answer);
    expect(tasks.map((task) => task.dest)).toEqual(['/srv/files/up/a.txt', '/srv/files/up/b.bin']);
    expect(tasks.map((task) => task.bytes)).toEqual([5, 4]);
    expect(tasks[0]?.sha256).toBe(createHash('sha256').update('alpha').digest('hex'));
    await expectLanded(t, { 'srv/files/up/a.txt': 'alpha' });
    expect([...(await readFile(path.join(t.root, 'srv/files/up/b.bin')))]).toEqual([0, 1, 2, 255]);
  });

  it('lands a filename with subdirectories in them, and posts to the route root without a dir', async () => {
    const t = await startAgent();
    const body = multipart([{ filename: 'nested/deeper/c.txt', content: 'deep' }, { filename: 'top.txt', content: 'top' }]);
    const answer = await post(t, '/drop/files', body);
    expect(answer.status).toBe(202);
    expect(tasksOf(answer).map((task) => task.dest)).toEqual(['/srv/files/nested/deeper/c.txt', '/srv/files/top.txt']);
    await expectLanded(t, { 'srv/files/nested/deeper/c.txt': 'deep', 'srv/files/top.txt': 'top' });
  });

  it('ignores fields and parts with an empty filename', async () => {
    const t = await startAgent();
    const body = multipart([
      { name: 'note', content: 'field' },
      { filename: '', content: 'nameless' },
      { filename: 'only.txt', content: 'only' },
      { name: 'other', content: 'another field' },
    ]);
    const answer = await post(t, '/drop/files/in', body);
    expect(answer.status).toBe(202);
    expect(tasksOf(answer).map((task) => task.dest)).toEqual(['/srv/files/in/only.txt']);
    expect(queuedCount(t)).toBe(1);
  });

  it('answers 200 with every task done under Prefer: wait', async () => {
    const t = await startAgent();
    const body = multipart([{ filename: 'x.txt', content: 'x' }, { filename: 'y.txt', content: 'y' }]);
    const answer = await post(t, '/drop/files/w', body, { prefer: 'wait=5' });
    expect(answer.status).toBe(200);
    expect(tasksOf(answer).map((task) => task.status)).toEqual(['done', 'done']);
  });
});

describe('multipart refusals leave nothing behind', () => {
  const badNames: [string, string][] = [
    ['../escape.txt', 'a parent reference'],
    ['sub/../../escape.txt', 'a parent reference inside'],
    ['/etc/passwd', 'an absolute path'],
    ['a\\..\\b.txt', 'backslashes'],
    ['sub//b.txt', 'an empty segment'],
    ['./b.txt', 'a dot segment'],
  ];

  it.each(badNames)('%s (%s) between good parts → 400 BAD_PATH, no part staged or queued', async (bad) => {
    const t = await startAgent();
    const body = multipart([
      { filename: 'good-1.txt', content: 'one' },
      { filename: bad, content: 'evil' },
      { filename: 'good-2.txt', content: 'two' },
    ]);
    expectError(await post(t, '/drop/files/up', body), 400, 'BAD_PATH');
    // A part after the bad one must not be staged late, after the cleanup ran.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expectNoTrace(t);
    expect(await readdir(t.root).catch(() => [])).toEqual([]);
  });

  it('gives back every queue slot it took (capacity 2, pushes held)', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ queue: 'capacity: 2', createTarget: gate.createTarget });
    const parts = [{ filename: 'ok.txt', content: 'ok' }, { filename: '../bad', content: 'x' }, { filename: 'late.txt', content: 'late' }];
    expectError(await post(t, '/drop/files', multipart(parts)), 400, 'BAD_PATH');
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const name of ['one.txt', 'two.txt']) {
      const res = await fetch(`${t.url}/drop/files/${name}`, { method: 'PUT', body: name });
      expect(res.status).toBe(202);
    }
    gate.open();
  });

  it('refuses a body without a boundary with 400', async () => {
    const t = await startAgent();
    const answer = await send(t.url, '/drop/files/up', { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: multipart([{ filename: 'a.txt', content: 'a' }]) });
    expectError(answer, 400, 'BAD_REQUEST');
    await expectNoTrace(t);
  });

  it('refuses a body with no file part at all with 400', async () => {
    const t = await startAgent();
    expectError(await post(t, '/drop/files/up', multipart([{ name: 'just', content: 'a field' }])), 400, 'BAD_REQUEST');
    await expectNoTrace(t);
  });

  it('refuses an Idempotency-Key with 400 before the body: not honoured here, so not ignored either', async () => {
    const t = await startAgent();
    const answer = await post(t, '/drop/files/up', multipart([{ filename: 'a.txt', content: 'a' }]), { 'idempotency-key': 'k1' });
    expect(expectError(answer, 400, 'BAD_REQUEST').error.message).toMatch(/Idempotency-Key is not supported on multipart uploads/);
    await expectNoTrace(t);
  });

  it('refuses a truncated body (no closing delimiter) with 400', async () => {
    const t = await startAgent();
    const body = multipart([{ filename: 'a.txt', content: 'complete' }, { filename: 'b.txt', content: 'cut off' }], { end: false });
    expectError(await post(t, '/drop/files/up', body), 400, 'BAD_REQUEST');
    await expectNoTrace(t);
  });

  it('refuses more than 1000 file parts with 413', async () => {
    const t = await startAgent();
    const parts = Array.from({ length: 1001 }, (_, i) => ({ filename: `f${i}.txt`, content: String(i) }));
    expectError(await post(t, '/drop/files/many', multipart(parts)), 413, 'TOO_LARGE');
    await waitFor(async () => (await spoolFiles(t)).length === 0, { what: 'the staged parts to be removed' });
    await expectNoTrace(t);
  });

  it('refuses a body over max_body mid-part with 413, removing the parts already staged', async () => {
    const t = await startAgent({ http: '  max_body: 4KiB' });
    const body = multipart([{ filename: 'small.txt', content: 'fits' }, { filename: 'huge.bin', content: Buffer.alloc(8192, 1) }]);
    expectError(await post(t, '/drop/files/up', body), 413, 'TOO_LARGE');
    await waitFor(async () => (await spoolFiles(t)).length === 0, { what: 'the partial part to be removed' });
    await expectNoTrace(t);
  });

  it('refuses a Content-Digest that does not match the whole body with 422', async () => {
    const t = await startAgent();
    const digest = createHash('sha256').update('not the body').digest('base64');
    const body = multipart([{ filename: 'a.txt', content: 'a' }]);
    expectError(await post(t, '/drop/files/up', body, { 'content-digest': `sha-256=:${digest}:` }), 422, 'CHECKSUM_MISMATCH');
    await expectNoTrace(t);
  });

  it('checks the token before reading the body', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/secret/up', { method: 'POST', headers: { ...FORM, 'content-length': 100_000 } });
    const answer = await upload.answer;
    upload.req.destroy();
    expectError(answer, 401, 'UNAUTHORIZED');
  });

  it('drops everything when the client goes away mid-body', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/files/up', { method: 'POST', headers: FORM });
    upload.req.write(multipart([{ filename: 'whole.txt', content: 'whole' }], { end: false }));
    upload.req.write(partHead({ filename: 'cut.bin' }));
    upload.req.write(Buffer.alloc(64 * 1024, 3));
    await waitFor(async () => (await spoolFiles(t)).length === 2, { what: 'both parts to be staged' });
    upload.req.destroy();
    expect(await settled(upload)).toBeUndefined();
    await waitFor(async () => (await spoolFiles(t)).length === 0, { what: 'the staged parts to be removed' });
    await waitFor(() => t.logs.some((line) => line.msg === 'client aborted mid-body; nothing queued'), { what: 'the abort to be logged' });
    await expectNoTrace(t);
  });

  it('answers a multipart PUT with 405 Allow: POST', async () => {
    const t = await startAgent();
    const answer = await send(t.url, '/drop/files/up', { method: 'PUT', headers: FORM, body: multipart([{ filename: 'a.txt', content: 'a' }]) });
    expectError(answer, 405, 'METHOD_NOT_ALLOWED');
    expect(answer.headers.allow).toBe('POST');
    await expectNoTrace(t);
  });
});
