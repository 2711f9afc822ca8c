// The upload features of SPEC §3 beyond a plain 202: Prefer: wait, Idempotency-Key,
// GET /tasks/<id> through a task's life, and the health endpoints.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMALL_BODY } from '../../src/spool/receive.js';
import { describe, expect, it } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectError, fromFetch, journalEntries, json, open, queuedCount, send, spoolFiles, type Answer } from '../helpers/http.js';
import { gatedTarget, scriptedTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import { StevedoreError } from '../../src/errors.js';
import { failed } from '../../src/targets/target.js';

const put = (url: string, rel: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/drop/files/${rel}`, { method: 'PUT', headers, body }).then(fromFetch);
const getTask = async (t: TestAgent, id: unknown) => fromFetch(await fetch(`${t.url}/tasks/${String(id)}`));
const statusOf = async (t: TestAgent, id: unknown) => json(await getTask(t, id)).status;
const TASK_KEYS = ['id', 'route', 'target', 'dest', 'bytes', 'sha256', 'status', 'attempts', 'created_at', 'updated_at'];

describe('Prefer: wait', () => {
  it('holds the answer until the push is done: 200, status done, the file already landed', async () => {
    const t = await startAgent();
    const answer = await put(t.url, 'waited.txt', 'waited for', { prefer: 'wait=5' });
    expect(answer.status).toBe(200);
    expect(answer.headers['preference-applied']).toBe('wait=5');
    const task = json(answer);
    expect(task).toMatchObject({ status: 'done', attempts: 1, dest: '/srv/files/waited.txt' });
    expect(answer.headers.location).toBe(`/tasks/${String(task.id)}`);
    expect(await readFile(path.join(t.root, 'srv/files/waited.txt'), 'utf8')).toBe('waited for');
  });

  it('answers 202 with the task as it is when the push outlasts the wait', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ createTarget: gate.createTarget });
    const answer = await put(t.url, 'slow.txt', 'slow', { prefer: 'wait=1' });
    expect(answer.status).toBe(202);
    expect(json(answer).status).toBe('pushing');
    gate.open();
  });

  it('is not cut by idle_timeout while the agent waits for a push slower than it', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ idleTimeout: '1s', createTarget: gate.createTarget });
    const pending = put(t.url, 'patient.txt', 'patient', { prefer: 'wait=10' }).catch((error: unknown) => error);
    await waitFor(() => gate.started === 1, { what: 'the push to start' });
    // Nothing moves on the connection for longer than idle_timeout.
    await sleep(1500);
    gate.open();
    const answer = await pending;
    expect(answer).not.toBeInstanceOf(Error);
    expect(json(answer as Answer)).toMatchObject({ status: 'done' });
    expect((answer as Answer).status).toBe(200);
  });
});

describe('Idempotency-Key', () => {
  it('answers a retry with the first task: same id, no second file staged or queued', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ createTarget: gate.createTarget });
    const headers = { 'idempotency-key': 'upload-42' };
    const first = await put(t.url, 'once.txt', 'first body', headers);
    expect(first.status).toBe(202);
    const again = await put(t.url, 'once.txt', 'first body', headers);
    expect(again.status).toBe(202);
    expect(json(again).id).toBe(json(first).id);
    expect(again.headers.location).toBe(first.headers.location);
    expect(await spoolFiles(t)).toHaveLength(1);
    expect(queuedCount(t)).toBe(1);

    gate.open();
    await waitFor(async () => (await statusOf(t, json(first).id)) === 'done');
    // Still the same task once it is done; a retry that asks to wait learns it landed.
    const late = await put(t.url, 'once.txt', 'first body', headers);
    expect(json(late)).toMatchObject({ id: json(first).id, status: 'done' });
    const waited = await put(t.url, 'once.txt', 'first body', { ...headers, prefer: 'wait=5' });
    expect(waited.status).toBe(200);
    expect(waited.headers['preference-applied']).toBe('wait=5');
    expect(json(waited)).toMatchObject({ id: json(first).id, status: 'done' });
    expect(await readFile(path.join(t.root, 'srv/files/once.txt'), 'utf8')).toBe('first body');
    expect((await journalEntries(t)).filter((e) => e.op === 'add')).toHaveLength(1);
  });

  it('refuses the same key and path with other bytes with 422 IDEMPOTENCY_KEY_REUSED: they are not dropped unseen', async () => {
    const t = await startAgent();
    const headers = { 'idempotency-key': 'k-2' };
    expect((await put(t.url, 'a.txt', 'first', headers)).status).toBe(202);
    const answer = expectError(await put(t.url, 'a.txt', 'second', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(answer.error.message).toMatch(/^this Idempotency-Key was used for a body with sha-256 [0-9a-f]{64}; this one has [0-9a-f]{64}$/);
    expect(queuedCount(t)).toBe(1);
  });

  it('refuses the same key for a different path with 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const t = await startAgent();
    const headers = { 'idempotency-key': 'k-1' };
    expect((await put(t.url, 'a.txt', 'a', headers)).status).toBe(202);
    expectError(await put(t.url, 'b.txt', 'b', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(queuedCount(t)).toBe(1);
  });

  it('scopes keys by route: the same key on another route is a new task', async () => {
    const t = await startAgent();
    const first = await put(t.url, 'a.txt', 'a', { 'idempotency-key': 'shared' });
    const other = await fromFetch(
      await fetch(`${t.url}/drop/secret/a.txt`, { method: 'PUT', headers: { 'idempotency-key': 'shared', authorization: 'Bearer s3cret-token' }, body: 'a' }),
    );
    expect(other.status).toBe(202);
    expect(json(other).id).not.toBe(json(first).id);
    expect(queuedCount(t)).toBe(2);
  });

  it('answers 409 IDEMPOTENCY_CONFLICT while the first request with the key is still being received', async () => {
    const t = await startAgent();
    // Over SMALL_BODY, so the first body is visibly staged while it arrives.
    const slow = open(t.url, '/drop/files/slow.txt', { headers: { 'idempotency-key': 'busy', 'content-length': SMALL_BODY + 5 } });
    slow.req.write(Buffer.alloc(SMALL_BODY, 1));
    await waitFor(async () => (await spoolFiles(t)).length === 1, { what: 'the first body to be staged' });
    expectError(await put(t.url, 'slow.txt', '1234567890', { 'idempotency-key': 'busy' }), 409, 'IDEMPOTENCY_CONFLICT');
    slow.req.end('67890');
    const first = await slow.answer;
    expect(first.status).toBe(202);
    expect(queuedCount(t)).toBe(1);
  });

  it('refuses an empty key', async () => {
    const t = await startAgent();
    expectError(await send(t.url, '/drop/files/a.txt', { headers: { 'idempotency-key': '""' }, body: 'a' }), 400, 'BAD_REQUEST');
  });
});

describe('Expect: 100-continue', () => {
  it('asks for the body once the request passed its checks, then accepts it', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/secret/continued.txt', {
      headers: { expect: '100-continue', 'content-length': 5, authorization: 'Bearer s3cret-token' },
    });
    await new Promise((resolve) => upload.req.once('continue', resolve));
    upload.req.end('hello');
    const answer = await upload.answer;
    expect(answer.status).toBe(202);
    expect(json(answer)).toMatchObject({ dest: '/srv/secret/continued.txt', bytes: 5 });
  });
});

describe('GET /tasks/<id>', () => {
  it('follows a task from pushing to done', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ createTarget: gate.createTarget });
    const accepted = await put(t.url, 'life.txt', 'life');
    const task = json(accepted);
    expect(Object.keys(task)).toEqual(expect.arrayContaining(TASK_KEYS));
    expect(['queued', 'pushing']).toContain(task.status);
    await waitFor(() => gate.started === 1, { what: 'the push to start' });

    const pushing = json(await getTask(t, task.id));
    expect(pushing).toMatchObject({ id: task.id, status: 'pushing', attempts: 1, route: 'files', target: 'box', bytes: 4 });
    gate.open();
    const done = await waitFor(async () => {
      const now = json(await getTask(t, task.id));
      return now.status === 'done' ? now : undefined;
    });
    expect(done).toMatchObject({ attempts: 1, created_at: task.created_at, sha256: task.sha256 });
    expect(done.error).toBeUndefined();
    expect(Date.parse(String(done.updated_at))).toBeGreaterThanOrEqual(Date.parse(String(done.created_at)));
  });

  it('shows a retry and clears its error once a later attempt lands', async () => {
    let calls = 0;
    const t = await startAgent({
      createTarget: scriptedTarget(async (items, signal, real) => {
        calls += 1;
        if (calls === 1) return items.map(() => failed(new StevedoreError('TARGET_IO', 'flaky disk')));
        return real.push(items, signal);
      }),
    });
    const task = json(await put(t.url, 'flaky.txt', 'flaky'));
    const done = await waitFor(async () => {
      const now = json(await getTask(t, task.id));
      return now.status === 'done' ? now : undefined;
    });
    expect(done.attempts).toBe(2);
    expect(done.error).toBeUndefined();
    const retrying = t.logs.find((line) => line.taskId === task.id && line.status === 'retrying');
    expect(retrying?.error).toMatchObject({ code: 'TARGET_IO', message: 'flaky disk' });
  });
});

describe('health endpoints', () => {
  const get = async (t: TestAgent, rawPath: string, method = 'GET'): Promise<Answer> => send(t.url, rawPath, { method });

  it('/healthz answers 200 on GET and HEAD, query string or not', async () => {
    const t = await startAgent();
    const plain = await get(t, '/healthz');
    expect(plain.status).toBe(200);
    expect(json(plain)).toEqual({ status: 'ok' });
    expect((await get(t, '/healthz?probe=1')).status).toBe(200);
    const head = await get(t, '/healthz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('/readyz answers 200 when the spool has room', async () => {
    const t = await startAgent();
    const answer = await get(t, '/readyz');
    expect(answer.status).toBe(200);
    expect(json(answer)).toEqual({ status: 'ready' });
  });

  it('/readyz answers 503 with the problem when the spool is short of min_free, while /healthz stays 200', async () => {
    const t = await startAgent({ minFree: '1000TiB' });
    const answer = await get(t, '/readyz');
    expect(answer.status).toBe(503);
    expect(json(answer)).toMatchObject({ status: 'not_ready', problems: [expect.stringContaining('min_free')] });
    expect((await get(t, '/healthz')).status).toBe(200);
  });
});
