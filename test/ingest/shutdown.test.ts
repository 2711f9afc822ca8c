// SPEC §6: a stop answers new requests 503 while pushes drain, instead of refusing
// connections; what watches the drain (health, status, a task) is still answered.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { expectError, fromFetch, json, send } from '../helpers/http.js';
import { gatedTarget } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

describe('while the agent stops', () => {
  it('answers new uploads 503 SHUTTING_DOWN with Connection: close until the pushes drained, and still answers the reads that watch the drain', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ createTarget: gate.createTarget, shutdownGrace: '30s' });
    const first = await fetch(`${t.url}/drop/files/held.txt`, { method: 'PUT', body: 'held' }).then(fromFetch);
    expect(first.status).toBe(202);
    await waitFor(() => gate.started === 1, { what: 'the push to start' });

    const closed = t.close();
    const refused = await send(t.url, '/drop/files/late.txt', { method: 'PUT', body: 'late' });
    expect(expectError(refused, 503, 'SHUTTING_DOWN').error.message).toMatch(/shutting down/);
    expect(refused.headers.connection).toBe('close');
    // Node's own client: it reads an answer that comes before the body is taken (fetch may fail with EPIPE).
    const part = '--b\r\nContent-Disposition: form-data; name="f"; filename="late.txt"\r\n\r\nlate\r\n--b--\r\n';
    const multipart = await send(t.url, '/drop/files/dir', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: part });
    expectError(multipart, 503, 'SHUTTING_DOWN');

    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.url}/readyz`).then(fromFetch);
    expect(ready.status).toBe(503);
    expect(ready.text).toMatch(/shutting down/);
    expect((await fetch(`${t.url}/status`)).status).toBe(200);
    expect((await fetch(`${t.url}/metrics`)).status).toBe(200);
    const task = await fetch(`${t.url}/tasks/${String(json(first).id)}`).then(fromFetch);
    expect(json(task)).toMatchObject({ id: json(first).id, status: 'pushing' });

    gate.open();
    await closed;
    expect(await readFile(path.join(t.root, 'srv/files/held.txt'), 'utf8')).toBe('held');
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow();
  });
});
