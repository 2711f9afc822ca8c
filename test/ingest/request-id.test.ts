// Every request has an id (X-Request-Id when the client sent a sane one, else made by
// the agent): echoed in the answer, on the log lines about the request, and on every
// log line of the tasks it made, before and after a restart.
import { describe, expect, it } from 'vitest';
import { launchAgent, startAgent } from '../helpers/agent.js';
import { send } from '../helpers/http.js';
import { failingTarget } from '../helpers/targets.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';

const MADE = /^[A-Za-z0-9_-]{16}$/;

describe('request ids', () => {
  it.each([
    ['a sane X-Request-Id', { 'x-request-id': 'trace-4bf92f35:00f0' }, 'trace-4bf92f35:00f0'],
    ['a UUID', { 'x-request-id': '3f0e6c1a-2b8d-4e7a-9c51-0d3b2a6f8e11' }, '3f0e6c1a-2b8d-4e7a-9c51-0d3b2a6f8e11'],
    ['none', {}, MADE],
    ['one with a space', { 'x-request-id': 'a b' }, MADE],
    ['one with a line break encoded in it', { 'x-request-id': 'a%0Ab' }, MADE],
    ['one of 129 characters', { 'x-request-id': 'x'.repeat(129) }, MADE],
  ])('%s: the answer and every log line of the request and its task carry the id', async (_what, headers, expected) => {
    const t = await startAgent();
    const answer = await send(t.url, '/drop/files/id.txt', { body: 'traced', headers });
    expect(answer.status).toBe(202);
    const id = String(answer.headers['x-request-id']);
    expect(id).toMatch(expected instanceof RegExp ? expected : new RegExp(`^${expected}$`));
    const taskId = (JSON.parse(answer.text) as { id: string }).id;
    await waitFor(() => t.logs.some((l) => l.taskId === taskId && l.msg === 'task done'), { what: 'the task to be done' });
    const lines = t.logs.filter((l) => l.taskId === taskId);
    expect(lines.map((l) => l.msg)).toEqual(['task queued', 'task pushing', 'task done']);
    expect(lines.every((l) => l.reqId === id)).toBe(true);
  });

  it('a repeated X-Request-Id is not taken: the agent makes one', async () => {
    const t = await startAgent();
    const answer = await send(t.url, '/drop/files/twice.txt', { body: 'x', headers: { 'x-request-id': ['one', 'two'] as unknown as string } });
    expect(answer.status).toBe(202);
    expect(String(answer.headers['x-request-id'])).toMatch(MADE);
  });

  it('each request without one gets its own, also an error answer, whose log line carries it', async () => {
    const t = await startAgent();
    const answers = await Promise.all([1, 2, 3].map(() => send(t.url, '/drop/secret/x.txt', { body: 'x' })));
    const ids = answers.map((a) => String(a.headers['x-request-id']));
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401]);
    expect(new Set(ids).size).toBe(3);
    const refused = t.logs.filter((l) => l.code === 'UNAUTHORIZED');
    expect(refused.map((l) => l.reqId).sort()).toEqual([...ids].sort());
  });

  it('a task journaled before a restart still carries its request id in its log lines after it', async () => {
    const dir = await tempDir();
    // The target is down: the task waits in the journal when the agent stops.
    const first = await launchAgent({ dir, createTarget: failingTarget('TARGET_DOWN') });
    const answer = await send(first.url, '/drop/files/after.txt', { body: 'x', headers: { 'x-request-id': 'kept-across' } });
    expect(answer.status).toBe(202);
    const taskId = (JSON.parse(answer.text) as { id: string }).id;
    await first.close();
    const again = await startAgent({ dir });
    await waitFor(() => again.logs.some((l) => l.taskId === taskId && l.msg === 'task done'), { what: 'the recovered task to land' });
    const lines = again.logs.filter((l) => l.taskId === taskId);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.every((l) => l.reqId === 'kept-across')).toBe(true);
  });
});
