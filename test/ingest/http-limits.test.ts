// SPEC §3's refusals that depend on the body or on the agent's state: size, checksum,
// queue capacity, disk space, and a push that failed for good. Except for the last,
// none may leave a staged file, a journal line or a queued task behind.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { expectError, expectNoTrace, fromFetch, journalEntries, json, open, queuedCount, send, spoolFiles } from '../helpers/http.js';
import { failingTarget, gatedTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest();
const put = (url: string, rel: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/drop/files/${rel}`, { method: 'PUT', headers, body }).then(fromFetch);

/** Sends headers promising `length` bytes, and never the body. */
async function headersOnly(url: string, length: number, headers: Record<string, string> = {}) {
  const upload = open(url, '/drop/files/never.bin', { headers: { ...headers, 'content-length': length } });
  const answer = await upload.answer;
  upload.req.destroy();
  return answer;
}

describe('413 TOO_LARGE (max_body 1KiB)', () => {
  const small = { http: '  max_body: 1KiB' };

  it('accepts a body of exactly max_body', async () => {
    const t = await startAgent(small);
    expect((await put(t.url, 'edge.bin', 'x'.repeat(1024))).status).toBe(202);
  });

  it('refuses a body one byte over, nothing staged', async () => {
    const t = await startAgent(small);
    expectError(await put(t.url, 'over.bin', 'x'.repeat(1025)), 413, 'TOO_LARGE');
    await expectNoTrace(t);
  });

  it('answers a Content-Length over max_body before any of the body is sent', async () => {
    const t = await startAgent(small);
    const answer = await headersOnly(t.url, 10 * 2 ** 30);
    expectError(answer, 413, 'TOO_LARGE');
    expect(answer.headers.connection).toBe('close');
    await expectNoTrace(t);
  });

  it('cuts a chunked body that grows past max_body mid-stream and removes the partial file', async () => {
    const t = await startAgent(small);
    const upload = open(t.url, '/drop/files/chunked.bin');
    expect(upload.req.getHeader('content-length')).toBeUndefined();
    upload.req.write(Buffer.alloc(600, 1));
    // The file is being staged: the refusal must clean it up, not merely never start it.
    await waitFor(async () => (await spoolFiles(t)).length === 1, { what: 'the partial file in the spool' });
    upload.req.write(Buffer.alloc(600, 2));
    expectError(await upload.answer, 413, 'TOO_LARGE');
    upload.req.destroy();
    await expectNoTrace(t);
  });
});

describe('422 CHECKSUM_MISMATCH', () => {
  const body = 'the real content';
  const other = sha256('something else');
  const mismatches: [string, Record<string, string>][] = [
    ['Content-Digest', { 'content-digest': `sha-256=:${other.toString('base64')}:` }],
    ['Content-Digest among other algorithms', { 'content-digest': `sha-512=:AAAA:, sha-256=:${other.toString('base64')}:` }],
    ['X-Checksum-Sha256', { 'x-checksum-sha256': other.toString('hex') }],
    ['X-Checksum-Sha256 (beside a right Content-Digest)', { 'x-checksum-sha256': other.toString('hex'), 'content-digest': `sha-256=:${sha256(body).toString('base64')}:` }],
  ];

  it.each(mismatches)('a wrong %s → 422, nothing staged or queued', async (_label, headers) => {
    const t = await startAgent();
    expectError(await put(t.url, 'sum.txt', body, headers), 422, 'CHECKSUM_MISMATCH');
    await expectNoTrace(t);
    expect(await readdir(t.root).catch(() => [])).toEqual([]);
  });

  const matches: [string, Record<string, string>][] = [
    ['Content-Digest', { 'content-digest': `sha-256=:${sha256(body).toString('base64')}:` }],
    ['X-Checksum-Sha256', { 'x-checksum-sha256': sha256(body).toString('hex') }],
    ['X-Checksum-Sha256 in upper case', { 'x-checksum-sha256': sha256(body).toString('hex').toUpperCase() }],
  ];

  it.each(matches)('a matching %s → 202', async (_label, headers) => {
    const t = await startAgent();
    const answer = await put(t.url, 'sum.txt', body, headers);
    expect(answer.status).toBe(202);
    expect(json(answer).sha256).toBe(sha256(body).toString('hex'));
  });

  it.each([
    ['X-Checksum-Sha256 that is not 64 hex digits', { 'x-checksum-sha256': 'abc123' }],
    ['Content-Digest sha-256 that is not 32 bytes', { 'content-digest': 'sha-256=:AAAA:' }],
    // Never skipped silently: a digest the agent cannot compute is refused, not ignored.
    ['Content-Digest with only an algorithm we do not verify', { 'content-digest': 'sha-512=:AAAA:' }],
  ])('a malformed %s → 400 BAD_REQUEST', async (_label, headers) => {
    const t = await startAgent();
    expectError(await put(t.url, 'sum.txt', body, headers), 400, 'BAD_REQUEST');
    await expectNoTrace(t);
  });
});

describe('503 QUEUE_FULL (capacity 1, a target that holds every push)', () => {
  it('refuses with Retry-After while the slot is taken, before reading the body, and recovers', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ queue: 'capacity: 1', createTarget: gate.createTarget });
    const first = await put(t.url, 'first.txt', 'one');
    expect(first.status).toBe(202);
    await waitFor(() => gate.started === 1, { what: 'the first push to start' });

    const full = await put(t.url, 'second.txt', 'two');
    expectError(full, 503, 'QUEUE_FULL');
    expect(full.headers['retry-after']).toMatch(/^\d+$/);
    const unread = await headersOnly(t.url, 1000);
    expectError(unread, 503, 'QUEUE_FULL');
    expect(unread.headers.connection).toBe('close');
    expect(await spoolFiles(t)).toHaveLength(1);
    expect((await journalEntries(t)).filter((e) => e.op === 'add')).toHaveLength(1);

    gate.open();
    await waitFor(async () => json(await fromFetch(await fetch(`${t.url}/tasks/${String(json(first).id)}`))).status === 'done');
    // The refusals took no slot for good: the next upload fits again.
    await waitFor(async () => (await put(t.url, 'third.txt', 'three')).status === 202, { what: 'the slot to come back' });
    expect(queuedCount(t)).toBe(2);
    await expect(readFile(path.join(t.root, 'srv/files/second.txt'))).rejects.toThrow();
  });
});

describe('507 INSUFFICIENT_STORAGE (min_free far above what the disk has)', () => {
  it('refuses a body, nothing staged', async () => {
    const t = await startAgent({ minFree: '1000TiB' });
    expectError(await put(t.url, 'big.txt', 'data'), 507, 'INSUFFICIENT_STORAGE');
    await expectNoTrace(t);
  });

  it('refuses before reading the body', async () => {
    const t = await startAgent({ minFree: '1000TiB' });
    const answer = await headersOnly(t.url, 5000);
    expectError(answer, 507, 'INSUFFICIENT_STORAGE');
    expect(answer.headers.connection).toBe('close');
    await expectNoTrace(t);
  });

  it('refuses a chunked body with no declared length too', async () => {
    const t = await startAgent({ minFree: '1000TiB' });
    const upload = open(t.url, '/drop/files/chunked.bin');
    upload.req.end('some bytes');
    expectError(await upload.answer, 507, 'INSUFFICIENT_STORAGE');
    await expectNoTrace(t);
  });
});

describe('502 PUSH_FAILED with Prefer: wait', () => {
  it('answers 502 with the failed task in error.task and dead-letters the file', async () => {
    const t = await startAgent({ createTarget: failingTarget('PERMISSION_DENIED') });
    const answer = await put(t.url, 'doomed.txt', 'doomed', { prefer: 'wait=5' });
    const body = expectError(answer, 502, 'PUSH_FAILED');
    const task = body.error.task as Record<string, unknown>;
    expect(task).toMatchObject({ status: 'failed', dest: '/srv/files/doomed.txt', attempts: 1, error: { code: 'PERMISSION_DENIED' } });
    // 'failed' is published before the dead-letter bookkeeping is done (scheduler.ts).
    await waitFor(async () => (await journalEntries(t)).length === 2, { what: 'the dead line' });
    expect((await journalEntries(t)).map((e) => e.op)).toEqual(['add', 'dead']);
    expect(await readFile(path.join(t.stateDir, 'dead-letter', String(task.id), 'data'), 'utf8')).toBe('doomed');
    expect(await spoolFiles(t)).toEqual([]);
  });

  it('answers 202 as usual without Prefer: wait, and the task fails later', async () => {
    const t = await startAgent({ createTarget: failingTarget('PERMISSION_DENIED') });
    const answer = await put(t.url, 'doomed.txt', 'doomed');
    expect(answer.status).toBe(202);
    const url = `${t.url}/tasks/${String(json(answer).id)}`;
    const failed = await waitFor(async () => {
      const task = json(await fromFetch(await fetch(url)));
      return task.status === 'failed' ? task : undefined;
    });
    expect(failed.error).toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('answers a retry with the same Idempotency-Key as the first request was answered: 502 with Prefer: wait, 202 without', async () => {
    const t = await startAgent({ createTarget: failingTarget('PERMISSION_DENIED') });
    const headers = { prefer: 'wait=5', 'idempotency-key': 'doomed-1' };
    const first = expectError(await put(t.url, 'doomed.txt', 'doomed', headers), 502, 'PUSH_FAILED');
    const again = await put(t.url, 'doomed.txt', 'doomed', headers);
    expect(again.headers['preference-applied']).toBe('wait=5');
    expect(expectError(again, 502, 'PUSH_FAILED').error.task).toMatchObject({ id: (first.error.task as { id: string }).id, status: 'failed' });
    const plain = await put(t.url, 'doomed.txt', 'doomed', { 'idempotency-key': 'doomed-1' });
    expect(plain.status).toBe(202);
    expect(json(plain)).toMatchObject({ id: (first.error.task as { id: string }).id, status: 'failed' });
  });

  it('answers a Prefer: wait upload through the raw client too (the header is honoured on PUT and POST)', async () => {
    const t = await startAgent({ createTarget: failingTarget('DEST_UNSAFE') });
    const answer = await send(t.url, '/drop/files/x.txt', { method: 'POST', headers: { prefer: 'respond-async, wait=5' }, body: 'x' });
    expect(expectError(answer, 502, 'PUSH_FAILED').error.task).toMatchObject({ error: { code: 'DEST_UNSAFE' } });
  });
});
