// GET /events: task changes as Server-Sent Events, read by a real client off a real
// agent; guarded like /status.
import { request, type IncomingMessage } from 'node:http';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectError, json, send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

interface TaskEvent {
  id: string;
  status: string;
  dest: string;
}

interface EventReader {
  res: IncomingMessage;
  events: TaskEvent[];
  /** Every raw line received (comments included). */
  lines: string[];
}

/** Opens GET /events and parses `task` events as they come. */
function readEvents(t: TestAgent, headers: Record<string, string> = {}): Promise<EventReader> {
  const { port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', headers, agent: false }, (res) => {
      const reader: EventReader = { res, events: [], lines: [] };
      let buffer = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        const blocks = buffer.split('\n\n');
        buffer = blocks.pop() ?? '';
        for (const block of blocks) {
          reader.lines.push(...block.split('\n'));
          const data = /^event: task\ndata: (.*)$/m.exec(block)?.[1];
          if (data) reader.events.push(JSON.parse(data) as TaskEvent);
        }
      });
      onTestFinished(() => void res.destroy());

      resolve(reader);
    });
    req.once('error', reject).end();
  });
}

describe('GET /events', () => {
  it('starts with the recent tasks, then streams every change of each new one to done', async () => {
    const t = await startAgent();
    const before = json<TaskEvent>(await send(t.url, '/drop/files/before.txt', { body: 'old' }));
    await waitFor(() => t.agent.registry.get(before.id)?.status === 'done');
    const reader = await readEvents(t);
    expect(reader.res.statusCode).toBe(200);
    expect(reader.res.headers['content-type']).toMatch(/^text\/event-stream/);
    await waitFor(() => reader.events.some((e) => e.id === before.id && e.status === 'done'), { what: 'the earlier task' });
    const after = json<TaskEvent>(await send(t.url, '/drop/files/after.txt', { body: 'new' }));
    await waitFor(() => reader.events.some((e) => e.id === after.id && e.status === 'done'), { what: 'the new task done' });
    const statuses = reader.events.filter((e) => e.id === after.id).map((e) => e.status);
    expect(statuses[0]).toBe('queued');
    expect(reader.events.find((e) => e.id === after.id)?.dest).toBe('/srv/files/after.txt');
  });

  it('keeps a quiet stream open past http.idle_timeout with comments', async () => {
    const t = await startAgent({ idleTimeout: '1s' });
    const reader = await readEvents(t);
    await waitFor(() => reader.lines.filter((line) => line === ': keep-alive').length >= 3, { timeoutMs: 10_000, what: 'three heartbeats' });
    expect(reader.res.destroyed).toBe(false);
  });

  it('wants http.admin_token like /status, and ends its streams cleanly when the agent stops', async () => {
    const t = await startAgent({ http: '  admin_token: ops-secret' });
    expectError(await send(t.url, '/events', { method: 'GET' }), 401, 'UNAUTHORIZED');
    expectError(await send(t.url, '/events', { method: 'GET', headers: { authorization: 'Bearer wrong' } }), 401, 'UNAUTHORIZED');
    expectError(await send(t.url, '/events', { method: 'POST', headers: { authorization: 'Bearer ops-secret' } }), 405, 'METHOD_NOT_ALLOWED');
    const reader = await readEvents(t, { authorization: 'Bearer ops-secret' });
    expect(reader.res.statusCode).toBe(200);
    const ended = new Promise((resolve) => reader.res.once('close', resolve));
    await t.close();
    await ended;
    expect(reader.res.complete).toBe(true); // ended by the agent, not cut with the connection
  });
});
