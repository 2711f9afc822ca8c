// A tus PATCH slower than http.min_rate: its body is cut with 408 like any other
// (write.ts stops on the body's signal), the data file is cut back to where the PATCH
// started, and the upload goes on from there: nothing of the slow body is kept, the
// upload's lock is let go, and its place among the bodies being received is free.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent.js';
import { expectError, json, send } from '../helpers/http.js';
import { createUpload, headUpload, patchUpload } from '../helpers/tus.js';
import { waitFor } from '../helpers/wait.js';
import { exchange, rawRequest } from '../hostile/harness.js';

const MiB = 2 ** 20;
const TOKEN = 's3cret-token';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('a tus PATCH slower than http.min_rate', () => {
  it('is cut with 408, keeps nothing of its body (what was written of it is cut back), and the upload goes on from its offset', async () => {
    // idle_timeout 2s: 2 s rate windows at the default 1 KiB/s.
    const t = await startAgent({ idleTimeout: '2s' });
    const data = Buffer.concat([Buffer.alloc(100, 'a'), Buffer.alloc(2 * MiB, 'b')]);
    const created = await createUpload(t.url, '/drop/secret', data.length, { name: 'slow.bin', token: TOKEN });
    expect(created.status).toBe(201);
    const location = new URL(String(created.headers.location), t.url).pathname;
    const part = path.join(t.stateDir, 'uploads', `${path.posix.basename(location)}.part`);
    expect((await patchUpload(t.url, location, 0, data.subarray(0, 100), auth)).status).toBe(204);

    // The rest: 1.5 MiB at once (more than the 1 MiB the store gathers before it
    // writes, so some of it is on disk), then one byte every 100 ms (10 B/s).
    const head = rawRequest('PATCH', location, { 'tus-resumable': '1.0.0', 'upload-offset': 100, 'content-type': 'application/offset+octet-stream', 'content-length': 2 * MiB, ...auth });
    const fast = Buffer.alloc(1.5 * MiB, 'b');
    const slow = await exchange(t.url, [head, fast, ...Array.from({ length: 100 }, () => 'b')], { gapMs: 100 });
    expectError(slow.answer ?? { status: 0, headers: {}, text: '' }, 408, 'REQUEST_TIMEOUT');
    expect(slow.written).toBeLessThan(head.length + fast.length + 100);

    // Cut back to the offset the PATCH started at, and reported so.
    expect((await stat(part)).size).toBe(100);
    expect((await headUpload(t.url, location, auth)).offset).toBe(100);
    expect(json<{ receiving: { bodies: number } }>(await send(t.url, '/status', { method: 'GET' })).receiving.bodies).toBe(0);

    // The next PATCH is not held by the cut one's lock, and the upload lands whole.
    const rest = await patchUpload(t.url, location, 100, data.subarray(100), auth);
    expect(rest.status).toBe(204);
    expect(rest.headers['upload-offset']).toBe(String(data.length));
    await waitFor(async () => (await readFile(path.join(t.root, 'srv/secret/slow.bin')).catch(() => undefined))?.equals(data), { what: 'slow.bin to land', timeoutMs: 10_000 });
  });
});
