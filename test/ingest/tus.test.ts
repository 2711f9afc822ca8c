// tus 1.0 on every route (SPEC §8) through a real agent: tus-js-client from npm for the
// uploads, raw requests for what a well-behaved client never sends.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectError, journalEntries, json, open, send, type Answer } from '../helpers/http.js';
import { cuttingProxy } from '../helpers/proxy.js';
import { gatedTarget } from '../helpers/targets.js';
import { createUpload, headUpload, linkedTask, patchUpload, tusUpload } from '../helpers/tus.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 2 ** 20;
const TOKEN = 's3cret-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const uploadsDir = (t: TestAgent) => path.join(t.stateDir, 'uploads');
const landed = (t: TestAgent, rel: string) => readFile(path.join(t.root, 'srv/secret', rel)).catch(() => undefined);
const sha = (data: Buffer, algorithm = 'sha256') => createHash(algorithm).update(data).digest('base64');

/** An error answer to HEAD: its status and JSON type, without the body HEAD never has. */
function expectHeadError(answer: Answer, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json\b/);
}

async function landsAs(t: TestAgent, rel: string, data: Buffer): Promise<void> {
  await waitFor(async () => (await landed(t, rel))?.equals(data), { what: `${rel} to land`, timeoutMs: 10_000 });
}

describe('tus uploads', () => {
  it('land byte-identical; the last PATCH answers with the task, journaled before the answer', async () => {
    const t = await startAgent();
    const data = randomBytes(3 * MiB + 5);
    const upload = await tusUpload({ endpoint: `${t.url}/drop/secret`, token: TOKEN, data, name: 'a/b.bin', chunkSize: MiB });
    const id = linkedTask(upload.link);
    expect(id, upload.link).toBeDefined();
    expect(upload.patchOffsets).toEqual([0, MiB, 2 * MiB, 3 * MiB]);
    expect((await journalEntries(t)).some((e) => e.op === 'add' && (e.task as { id: string }).id === id)).toBe(true);
    await landsAs(t, 'a/b.bin', data);
    const task = json(await send(t.url, `/tasks/${id}`, { method: 'GET' }));
    expect(task).toMatchObject({ route: 'secret', dest: '/srv/secret/a/b.bin', bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    // The upload is over: its bytes are the task's, its record says so.
    expect((await readdir(uploadsDir(t))).filter((name) => name.endsWith('.part'))).toEqual([]);
    expect((await headUpload(t.url, new URL(upload.url).pathname, auth)).offset).toBe(data.length);
  });

  it('OPTIONS at a route advertises tus 1.0, its extensions, sha256 and max_body', async () => {
    const t = await startAgent({ http: '  max_body: 5MiB' });
    const answer = await send(t.url, '/drop/secret', { method: 'OPTIONS', headers: auth });
    expect(answer.status).toBe(204);
    expect(answer.headers['tus-version']).toBe('1.0.0');
    expect(String(answer.headers['tus-extension']).split(',').sort()).toEqual(['checksum', 'creation', 'creation-with-upload', 'expiration', 'termination']);
    expect(String(answer.headers['tus-checksum-algorithm']).split(',')).toContain('sha256');
    expect(answer.headers['tus-max-size']).toBe(String(5 * MiB));
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('resumes from the offset the agent reports after the connection is cut mid-PATCH', async () => {
    const t = await startAgent();
    const proxy = await cuttingProxy(t.url);
    onTestFinished(() => proxy.close());
    const data = randomBytes(24 * MiB);
    proxy.cutAt(10 * MiB);
    const upload = await tusUpload({ endpoint: `${proxy.url}/drop/secret`, token: TOKEN, data, name: 'cut.bin' });
    await proxy.cut;
    // One PATCH for the whole file, cut; the next one starts where the agent's bytes end.
    expect(upload.patchOffsets.length).toBe(2);
    expect(upload.patchOffsets[1]).toBeGreaterThan(0);
    expect(proxy.sent).toBeLessThan(data.length + 12 * MiB);
    await landsAs(t, 'cut.bin', data);
  });

  it('goes on after the agent restarts, from the offset it reports', async () => {
    const first = await startAgent();
    const data = randomBytes(4 * MiB);
    const created = await createUpload(first.url, '/drop/secret', data.length, { name: 'restart.bin', token: TOKEN });
    const location = String(created.headers.location);
    expect((await patchUpload(first.url, location, 0, data.subarray(0, 3 * MiB), auth)).status).toBe(204);
    await first.close();
    const t = await startAgent({ dir: first.dir });
    expect((await headUpload(t.url, location, auth)).offset).toBe(3 * MiB);
    const last = await patchUpload(t.url, location, 3 * MiB, data.subarray(3 * MiB), auth);
    expect(last.status).toBe(204);
    expect(linkedTask(String(last.headers.link))).toBeDefined();
    await landsAs(t, 'restart.bin', data);
  });

  it('answers a wrong Upload-Offset with 409, a body past Upload-Length with 413, and changes nothing', async () => {
    const t = await startAgent();
    const location = String((await createUpload(t.url, '/drop/secret', 10, { token: TOKEN })).headers.location);
    expect((await patchUpload(t.url, location, 0, '12345', auth)).status).toBe(204);
    for (const offset of [0, 3, 7]) expectError(await patchUpload(t.url, location, offset, '67890', auth), 409, 'UPLOAD_OFFSET_CONFLICT');
    const past = expectError(await patchUpload(t.url, location, 5, '678901', auth), 413, 'TOO_LARGE');
    expect(past.error.message).toMatch(/past Upload-Length \(10 bytes\)/); // not max_body, which is 2 GiB
    expect((await headUpload(t.url, location, auth)).offset).toBe(5);
  });

  it('answers a chunked body past Upload-Length with 413 and stays up (it once ended the process)', async () => {
    const t = await startAgent();
    const location = String((await createUpload(t.url, '/drop/secret', 10, { token: TOKEN })).headers.location);
    // No Content-Length: node sends the body chunked, and only its bytes say it is too long.
    const patch = open(t.url, location, { method: 'PATCH', headers: { ...auth, 'tus-resumable': '1.0.0', 'upload-offset': 0, 'content-type': 'application/offset+octet-stream' } });
    patch.req.end('0123456789ABC');
    expect(expectError(await patch.answer, 413, 'TOO_LARGE').error.message).toMatch(/past Upload-Length \(10 bytes\)/);
    expect((await headUpload(t.url, location, auth)).offset).toBe(0);
    expect((await patchUpload(t.url, location, 0, '0123456789', auth)).status).toBe(204);
  });

  it('ends a stalled PATCH where it is when the client asks again: HEAD reports its bytes, the upload goes on', async () => {
    const t = await startAgent({ idleTimeout: '30s' });
    const data = randomBytes(2000);
    const location = String((await createUpload(t.url, '/drop/secret', data.length, { token: TOKEN, name: 'stalled.bin' })).headers.location);
    const stalled = open(t.url, location, { method: 'PATCH', headers: { ...auth, 'tus-resumable': '1.0.0', 'upload-offset': 0, 'content-type': 'application/offset+octet-stream', 'content-length': data.length } });
    stalled.req.write(data.subarray(0, 1000));
    await waitFor(async () => json<{ receiving: { bytes: number } }>(await send(t.url, '/status', { method: 'GET' })).receiving.bytes === 1000, { what: 'the agent to have the first bytes' });
    // A client that gave the stalled connection up asks where the upload is.
    expect((await headUpload(t.url, location, auth)).offset).toBe(1000);
    expect((await patchUpload(t.url, location, 1000, data.subarray(1000), auth)).status).toBe(204);
    stalled.req.destroy();
    await landsAs(t, 'stalled.bin', data);
  });

  it('checks Upload-Checksum (sha256, sha1): a mismatch is 460 and its bytes are discarded', async () => {
    const t = await startAgent();
    const data = randomBytes(3000);
    const location = String((await createUpload(t.url, '/drop/secret', data.length, { token: TOKEN, name: 'sum.bin' })).headers.location);
    const first = data.subarray(0, 1000);
    expectError(await patchUpload(t.url, location, 0, first, { ...auth, 'upload-checksum': `sha256 ${sha(randomBytes(8))}` }), 460, 'UPLOAD_CHECKSUM_MISMATCH');
    expect((await headUpload(t.url, location, auth)).offset).toBe(0);
    expect((await stat(path.join(uploadsDir(t), `${location.split('/').pop()}.part`))).size).toBe(0);
    expect((await patchUpload(t.url, location, 0, first, { ...auth, 'upload-checksum': `sha256 ${sha(first)}` })).status).toBe(204);
    const second = data.subarray(1000, 2000);
    expect((await patchUpload(t.url, location, 1000, second, { ...auth, 'upload-checksum': `sha1 ${sha(second, 'sha1')}` })).status).toBe(204);
    expectError(await patchUpload(t.url, location, 2000, data.subarray(2000), { ...auth, 'upload-checksum': `md5 ${sha(second, 'md5')}` }), 400, 'BAD_REQUEST');
    expect((await patchUpload(t.url, location, 2000, data.subarray(2000), { ...auth, 'upload-checksum': `sha256 ${sha(data.subarray(2000))}` })).status).toBe(204);
    await landsAs(t, 'sum.bin', data);
  });

  it('terminates an upload with DELETE: its files go, HEAD is 404', async () => {
    const t = await startAgent();
    const location = String((await createUpload(t.url, '/drop/secret', 100, { token: TOKEN })).headers.location);
    expect((await patchUpload(t.url, location, 0, Buffer.alloc(50), auth)).status).toBe(204);
    expect(await readdir(uploadsDir(t))).toHaveLength(2);
    expect((await send(t.url, location, { method: 'DELETE', headers: { 'tus-resumable': '1.0.0', ...auth } })).status).toBe(204);
    expect(await readdir(uploadsDir(t))).toEqual([]);
    expectHeadError((await headUpload(t.url, location, auth)).answer, 404);
  });

  it('removes abandoned uploads after http.upload_expiry: 410 or 404, counted', async () => {
    // 3 s: long enough that the PATCH below comes before expiry on a loaded machine.
    const t = await startAgent({ http: '  upload_expiry: 3s' });
    const location = String((await createUpload(t.url, '/drop/secret', 100, { token: TOKEN })).headers.location);
    expect((await patchUpload(t.url, location, 0, Buffer.alloc(10), auth)).status).toBe(204);
    const gone = await waitFor(async () => {
      const { status } = await headUpload(t.url, location, auth);
      return status === 410 || status === 404 ? status : undefined;
    }, { timeoutMs: 15_000, what: 'the upload to expire' });
    expect([404, 410]).toContain(gone);
    await waitFor(async () => (await readdir(uploadsDir(t))).length === 0, { what: 'its files to go' });
    const status = json<{ uploads: Record<string, number> }>(await send(t.url, '/status', { method: 'GET' }));
    expect(status.uploads).toMatchObject({ live: 0, expired: 1, expiry_seconds: 3 });
    expect((await send(t.url, '/metrics', { method: 'GET' })).text).toMatch(/^stevedore_uploads_expired_total 1$/m);
    expect([404, 410]).toContain((await patchUpload(t.url, location, 10, 'x', auth)).status);
  });

  it('wants the route token on every request', async () => {
    const t = await startAgent();
    const location = String((await createUpload(t.url, '/drop/secret', 10, { token: TOKEN })).headers.location);
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
      expectError(await createUpload(t.url, '/drop/secret', 10, { headers }), 401, 'UNAUTHORIZED');
      expectError(await send(t.url, '/drop/secret', { method: 'OPTIONS', headers }), 401, 'UNAUTHORIZED');
      expectHeadError((await headUpload(t.url, location, headers)).answer, 401);
      expectError(await patchUpload(t.url, location, 0, '12345', headers), 401, 'UNAUTHORIZED');
      expectError(await send(t.url, location, { method: 'DELETE', headers: { 'tus-resumable': '1.0.0', ...headers } }), 401, 'UNAUTHORIZED');
    }
    expect((await headUpload(t.url, location, auth)).offset).toBe(0);
  });

  it('refuses a name that escapes the route (400 BAD_PATH) and takes Uppy\'s relativePath', async () => {
    const t = await startAgent();
    for (const name of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a\\b', '.']) {
      expectError(await createUpload(t.url, '/drop/secret', 1, { name, token: TOKEN }), 400, 'BAD_PATH');
    }
    const relative = (value: string) => `filename ${Buffer.from('f.txt').toString('base64')},relativePath ${Buffer.from(value).toString('base64')}`;
    expectError(await createUpload(t.url, '/drop/secret', 1, { token: TOKEN, headers: { 'upload-metadata': relative('/dir/../../f.txt') } }), 400, 'BAD_PATH');
    expectError(await createUpload(t.url, '/drop/secret', 1, { token: TOKEN, headers: { 'upload-metadata': 'filetype dGV4dA==' } }), 400, 'BAD_PATH');
    const created = await createUpload(t.url, '/drop/secret', 2, { token: TOKEN, headers: { 'upload-metadata': relative('/dir/f.txt') } });
    expect((await patchUpload(t.url, String(created.headers.location), 0, 'hi', auth)).status).toBe(204);
    await landsAs(t, 'dir/f.txt', Buffer.from('hi'));
    expect(await readdir(uploadsDir(t))).toHaveLength(1); // the finished one's record only
  });

  it('checks max_body against Upload-Length, capacity and min_free at creation, before any byte', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ http: '  max_body: 1MiB', queue: 'capacity: 1', createTarget: gate.createTarget });
    onTestFinished(() => gate.open());
    expectError(await createUpload(t.url, '/drop/secret', MiB + 1, { token: TOKEN }), 413, 'TOO_LARGE');
    expectError(await createUpload(t.url, '/drop/secret', 1, { token: TOKEN, headers: { 'upload-defer-length': '1', 'upload-length': '' } }), 400, 'BAD_REQUEST');
    expect((await send(t.url, '/drop/secret/first.txt', { body: 'x', headers: auth })).status).toBe(202);
    expectError(await createUpload(t.url, '/drop/secret', 10, { token: TOKEN }), 503, 'QUEUE_FULL');
    expect(await readdir(uploadsDir(t))).toEqual([]);
  });

  it('keeps unfinished uploads to queue.capacity, those of routes without a token to half of it (503 QUEUE_FULL)', async () => {
    const t = await startAgent({ queue: 'capacity: 4' });
    const open = async (routePath: string, token?: string) => {
      const answer = await createUpload(t.url, routePath, 10, token ? { token } : {});
      expect(answer.status, answer.text).toBe(201);
      return String(answer.headers.location);
    };
    const first = await open('/drop/files');
    await open('/drop/files');
    const refused = await createUpload(t.url, '/drop/files', 10);
    expectError(refused, 503, 'QUEUE_FULL');
    expect(refused.headers['retry-after']).toBeDefined();
    // A route with a token still has room, up to capacity.
    await open('/drop/secret', TOKEN);
    await open('/drop/secret', TOKEN);
    expectError(await createUpload(t.url, '/drop/secret', 10, { token: TOKEN }), 503, 'QUEUE_FULL');
    // Ending one (or finishing it) makes room again.
    expect((await send(t.url, new URL(first, t.url).pathname, { method: 'DELETE', headers: { 'tus-resumable': '1.0.0' } })).status).toBe(204);
    await open('/drop/files');
    expect(json(await send(t.url, '/status', { method: 'GET' })).uploads).toMatchObject({ live: 4 });
  });

  it('leaves no upload behind when a creation-with-upload fails or is cut: its id was never told', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ queue: 'capacity: 1', createTarget: gate.createTarget });
    onTestFinished(() => gate.open());
    const withBody = { ...auth, 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream' };
    const create = (length: number, name: string, headers: Record<string, string | number> = {}) =>
      open(t.url, '/drop/secret', { method: 'POST', headers: { ...withBody, 'upload-length': length, 'upload-metadata': `filename ${Buffer.from(name).toString('base64')}`, ...headers } });
    const noUploads = () => waitFor(async () => (await readdir(uploadsDir(t))).length === 0 && json<{ uploads: { live: number } }>(await send(t.url, '/status', { method: 'GET' })).uploads.live === 0, { what: 'no upload left' });
    // Cut by the client mid-body.
    const cut = create(100_000, 'cut.bin', { 'content-length': 100_000 });
    cut.req.write(randomBytes(60_000));
    await waitFor(async () => json<{ receiving: { bytes: number } }>(await send(t.url, '/status', { method: 'GET' })).receiving.bytes === 60_000, { what: 'the first bytes' });
    cut.req.destroy();
    await noUploads();
    // A checksum that does not match, a chunked body past Upload-Length.
    const wrongSum = create(10, 'sum.bin', { 'content-length': 10, 'upload-checksum': `sha256 ${sha(randomBytes(4))}` });
    wrongSum.req.end('0123456789');
    expectError(await wrongSum.answer, 460, 'UPLOAD_CHECKSUM_MISMATCH');
    const tooLong = create(5, 'long.bin');
    tooLong.req.end('0123456789');
    expectError(await tooLong.answer, 413, 'TOO_LARGE');
    await noUploads();
    // Whole, but the queue is full at its end: 503, and no upload keeps its bytes.
    expect((await send(t.url, '/drop/secret/first.txt', { body: 'x', headers: auth })).status).toBe(202);
    const full = create(10, 'full.bin', { 'content-length': 10 });
    full.req.end('0123456789');
    expectError(await full.answer, 503, 'QUEUE_FULL');
    await noUploads();
  });

  it('refuses an upload that would cross min_free (507)', async () => {
    const t = await startAgent({ minFree: String(2 ** 52) });
    expectError(await createUpload(t.url, '/drop/secret', 10, { token: TOKEN }), 507, 'INSUFFICIENT_STORAGE');
    expect(await readdir(uploadsDir(t))).toEqual([]);
  });

  it('never reports a finished upload whose task could not be journaled: HEAD stays one byte short', async () => {
    const gate = gatedTarget();
    const t = await startAgent({ queue: 'capacity: 1', createTarget: gate.createTarget });
    onTestFinished(() => gate.open());
    const data = randomBytes(1000);
    const location = String((await createUpload(t.url, '/drop/secret', data.length, { token: TOKEN, name: 'full.bin' })).headers.location);
    expect((await send(t.url, '/drop/secret/first.txt', { body: 'x', headers: auth })).status).toBe(202);
    expectError(await patchUpload(t.url, location, 0, data, auth), 503, 'QUEUE_FULL');
    expect((await headUpload(t.url, location, auth)).offset).toBe(data.length - 1);
    gate.open();
    await landsAs(t, 'first.txt', Buffer.from('x'));
    const last = await waitFor(async () => {
      const answer = await patchUpload(t.url, location, data.length - 1, data.subarray(-1), auth);
      return answer.status === 204 ? answer : undefined;
    }, { what: 'the last byte to be taken' });
    expect(linkedTask(String(last.headers.link))).toBeDefined();
    await landsAs(t, 'full.bin', data);
  });

  it('keeps partial uploads 0600 in a 0700 directory', async () => {
    const t = await startAgent();
    const location = String((await createUpload(t.url, '/drop/secret', 10, { token: TOKEN })).headers.location);
    await patchUpload(t.url, location, 0, '123', auth);
    expect((await stat(uploadsDir(t))).mode & 0o777).toBe(0o700);
    for (const name of await readdir(uploadsDir(t))) expect((await stat(path.join(uploadsDir(t), name))).mode & 0o777).toBe(0o600);
  });

  it('answers tus protocol errors in JSON: no Tus-Resumable 412, a PATCH of another media type 415', async () => {
    const t = await startAgent();
    const location = String((await createUpload(t.url, '/drop/secret', 10, { token: TOKEN })).headers.location);
    expectHeadError(await send(t.url, location, { method: 'HEAD', headers: auth }), 412);
    expectError(await patchUpload(t.url, location, 0, '123', { ...auth, 'tus-resumable': '0.2.2' }), 412, 'TUS_VERSION_UNSUPPORTED');
    expectError(await patchUpload(t.url, location, 0, '123', { ...auth, 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await send(t.url, location, { method: 'GET', headers: auth }), 405, 'METHOD_NOT_ALLOWED');
    expectError(await patchUpload(t.url, '/uploads/nope', 0, '1'), 404, 'NOT_FOUND');
  });
});
