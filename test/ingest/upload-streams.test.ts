// Bodies on the wire: a large body streamed in, clients that go away mid-body, a body
// that stalls (idle_timeout), and one that is slow but never idle (no whole-request
// deadline). A body that does not arrive whole must leave nothing behind.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectNoTrace, fromFetch, json, open, settled, spoolFiles } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { SMALL_BODY, receive } from '../../src/spool/receive.js';
import { createSpool } from '../../src/spool/spool.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

const stagedOne = (t: TestAgent) => waitFor(async () => (await spoolFiles(t)).length === 1, { what: 'the body to be staged' });

/** The agent dropped the upload: nothing staged, journaled or queued, the drop logged, and it still accepts uploads. */
async function expectDropped(t: TestAgent): Promise<void> {
  await waitFor(async () => (await spoolFiles(t)).length === 0, { what: 'the partial file to be removed' });
  await waitFor(() => t.logs.some((line) => line.msg === 'client aborted mid-body; nothing queued'), { what: 'the abort to be logged' });
  await expectNoTrace(t);
  const after = await fetch(`${t.url}/drop/files/after.txt`, { method: 'PUT', body: 'still serving' });
  expect(after.status).toBe(202);
}

describe('a large body', () => {
  it('streams 20 MiB in chunks and lands byte-identical', async () => {
    const t = await startAgent();
    const chunks = Array.from({ length: 320 }, () => randomBytes(64 * 1024));
    const whole = Buffer.concat(chunks);
    const upload = open(t.url, '/drop/files/big/blob.bin');
    await pipeline(Readable.from(chunks), upload.req);
    const answer = await upload.answer;
    expect(answer.status).toBe(202);
    const task = json(answer);
    expect(task).toMatchObject({ bytes: 20 * 2 ** 20, sha256: sha256(whole) });
    await waitFor(async () => json(await fromFetch(await fetch(`${t.url}/tasks/${String(task.id)}`))).status === 'done', { timeoutMs: 15_000 });
    expect(await fileSha256(path.join(t.root, 'srv/files/big/blob.bin'))).toBe(sha256(whole));
  });
});

describe('a client that goes away mid-body', () => {
  it('destroys the socket after half of a declared Content-Length', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/files/cut.bin', { headers: { 'content-length': 2 * 2 ** 20 } });
    upload.req.write(randomBytes(2 ** 20));
    await stagedOne(t);
    upload.req.destroy();
    expect(await settled(upload)).toBeUndefined();
    await expectDropped(t);
  });

  it('destroys the socket in the middle of a small body (gathered in memory, never staged)', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/files/small-cut.bin', { headers: { 'content-length': 4096 } });
    upload.req.write(randomBytes(1000));
    await sleep(100);
    upload.req.destroy();
    expect(await settled(upload)).toBeUndefined();
    await expectDropped(t);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });

  it('destroys the socket in the middle of a chunked body', async () => {
    const t = await startAgent();
    const upload = open(t.url, '/drop/files/cut.bin');
    upload.req.write(randomBytes(256 * 1024));
    await stagedOne(t);
    upload.req.destroy();
    expect(await settled(upload)).toBeUndefined();
    await expectDropped(t);
  });

  it('half-closes (FIN) a bare socket before the Content-Length it promised', async () => {
    const t = await startAgent();
    const { port } = new URL(t.url);
    const socket = connect(Number(port), '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', () => undefined);
    // Over SMALL_BODY, so that the body streams into the spool as it arrives.
    socket.write(`PUT /drop/files/liar.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${SMALL_BODY + 100_000}\r\n\r\n`);
    socket.write(Buffer.alloc(1000, 7));
    await stagedOne(t);
    socket.end();
    await closed;
    // Whatever the agent says (if anything), it must not be an acceptance.
    expect(Buffer.concat(received).toString()).not.toMatch(/^HTTP\/1\.1 2/);
    await expectDropped(t);
  });
});

describe('receive(), under every upload', () => {
  it('refuses a body that was destroyed before it got to it, instead of waiting forever', async () => {
    const spool = createSpool(await tempDir());
    await spool.init();
    const body = new Readable({ read() {} });
    body.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    await expect(receive(spool, body, { maxBytes: 1024, minFree: 0 })).rejects.toMatchObject({ code: 'CLIENT_ABORTED' });
    expect(await readdir(spool.dir)).toEqual([]);
  });
});

// min_rate 0 throughout: idle_timeout alone here (test/hostile/slow-bodies.test.ts has the
// rate, which would otherwise race it for a stalled body).
describe('idle_timeout (1s here)', () => {
  it('cuts a body that stalls and removes the partial file', async () => {
    const t = await startAgent({ idleTimeout: '1s', http: '  min_rate: 0' });
    const upload = open(t.url, '/drop/files/stalled.bin', { headers: { 'content-length': SMALL_BODY + 10_000 } });
    upload.req.write(Buffer.alloc(1000, 1));
    await stagedOne(t);
    // The client now says nothing: the agent must end the request on its own.
    const answer = await settled(upload);
    expect(answer === undefined || answer.status >= 400).toBe(true);
    await expectDropped(t);
  });

  it('lets a body that is slow in total but never idle that long succeed', async () => {
    const t = await startAgent({ idleTimeout: '1s', http: '  min_rate: 0' });
    const pieces = Array.from({ length: 12 }, (_, i) => Buffer.alloc(100, i));
    const upload = open(t.url, '/drop/files/trickle.bin', { headers: { 'content-length': 1200 } });
    for (const piece of pieces) {
      upload.req.write(piece);
      // 12 × 250 ms: three times idle_timeout overall, never a quarter of it idle.
      await sleep(250);
    }
    upload.req.end();
    const answer = await upload.answer;
    expect(answer.status).toBe(202);
    expect(json(answer)).toMatchObject({ bytes: 1200, sha256: sha256(Buffer.concat(pieces)) });
  });

  it('lets a trickled chunked body (no Content-Length) succeed too', async () => {
    const t = await startAgent({ idleTimeout: '1s', http: '  min_rate: 0' });
    const upload = open(t.url, '/drop/files/trickle-chunked.bin');
    const pieces = Array.from({ length: 6 }, (_, i) => Buffer.alloc(10, 65 + i));
    for (const piece of pieces) {
      upload.req.write(piece);
      await sleep(400);
    }
    upload.req.end();
    const answer = await upload.answer;
    expect(answer.status).toBe(202);
    expect(json(answer).bytes).toBe(60);
  });
});
