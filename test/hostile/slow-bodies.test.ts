// Slow bodies (issue 10, item 8): 20 anonymous PUTs trickling a byte every 3 s once held
// every queue slot, so token-holders got 503 QUEUE_FULL and a dropped file waited while
// /readyz said 200. Now bodies being received are bounded (http.max_receiving, at most
// half the queue; routes without a token get half of that), /status shows them, /readyz
// says when no more fit, and a body slower than http.min_rate is cut with a JSON 408.
// bench/slow-bodies.ts prints the same scenario's figures against a real process.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ReceivingStatus } from '../../src/ingest/receiving.js';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { expectError, json } from '../helpers/http.js';
import { tempDir } from '../helpers/temp.js';
import { waitFor } from '../helpers/wait.js';
import { AFTER_ANSWER, TOKEN, expectConfined, expectOutcome, expectTasks, exchange, lands, parseAnswers, rawRequest, sharedAgent, tally, waitLanded, type Outcome, type Piece } from './harness.js';

const receiving = async (t: TestAgent) => ((await (await fetch(`${t.url}/status`)).json()) as { receiving: ReceivingStatus }).receiving;

/** A PUT whose head is sent and whose body never comes (until the socket is destroyed). */
function holdBody(t: TestAgent, target: string, headers: Record<string, string> = {}): { socket: Socket; answer: Promise<string> } {
  const socket = connect(Number(new URL(t.url).port), '127.0.0.1');
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
  socket.once('connect', () => socket.write(rawRequest('PUT', target, { 'content-length': 1000, connection: [], ...headers })));
  return { socket, answer };
}

describe('bodies being received hold a bounded share of the queue (capacity 6: at most 3 bodies, 2 without a token)', () => {
  it('trickling anonymous bodies lock out neither a token-holder nor a watched folder; /status and /readyz say what is held', async () => {
    const dir = await tempDir();
    const drop = path.join(dir, 'drop');
    await mkdir(drop);
    const extra = `watch:\n  - { name: w, path: ${drop}, target: box, dest: /srv/dropped, settle: 50ms }`;
    // min_rate 0 and a long idle_timeout: the held bodies stay, only the bounds act.
    const t = await startAgent({ dir, queue: 'capacity: 6', idleTimeout: '30s', http: '  min_rate: 0', extra });
    const held = [0, 1].map((i) => holdBody(t, `/drop/files/held${i}.bin`));
    try {
      await waitFor(async () => (await receiving(t)).anonymous === 2, { what: 'two anonymous bodies being received' });
      const refused = holdBody(t, '/drop/files/third.bin');
      const [third] = parseAnswers(Buffer.from(await refused.answer, 'latin1'));
      expectError(third ?? { status: 0, headers: {}, text: '' }, 503, 'TOO_MANY_UPLOADS');
      expect(third?.headers['retry-after']).toMatch(/^\d+$/);

      const token = await fetch(`${t.url}/drop/secret/token.txt`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` }, body: 'token' });
      expect(token.status).toBe(202);
      await writeFile(path.join(drop, 'dropped.txt'), 'dropped');
      await waitLanded(t, '/srv/dropped/dropped.txt', 'dropped');
      expect(await receiving(t)).toEqual({ bodies: 2, bytes: 0, limit: 3, anonymous: 2, anonymous_limit: 2, by_route: [{ route: 'files', bodies: 2, bytes: 0 }] });
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);

      // A third body (a token-holder's) fills the listener: /readyz says so, the next is refused.
      held.push(holdBody(t, '/drop/secret/held-token.bin', { authorization: `Bearer ${TOKEN}` }));
      await waitFor(async () => (await receiving(t)).bodies === 3, { what: 'three bodies being received' });
      const ready = await fetch(`${t.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(JSON.stringify(await ready.json())).toContain('http.max_receiving');
      const full = await fetch(`${t.url}/drop/secret/full.txt`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` }, body: 'x' });
      expect(full.status).toBe(503);
      expect(((await full.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_UPLOADS');
    } finally {
      for (const { socket } of held) socket.destroy();
    }
    await waitFor(async () => (await receiving(t)).bodies === 0, { what: 'the held bodies to be let go' });
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    expect(await readFile(path.join(t.root, 'srv/secret/token.txt'), 'utf8').catch(() => undefined)).toBeDefined();
  });
});

const trickle = (head: Buffer, bytes = 200): Piece[] => [head, ...Array.from({ length: bytes }, () => 'x')];
const multipartHead = (fields: Record<string, string | number> = {}) =>
  rawRequest('POST', '/drop/files/mp', { 'content-type': 'multipart/form-data; boundary=b', 'content-length': 10_000, ...fields }, '--b\r\nContent-Disposition: form-data; name="f"; filename="slow.txt"\r\n\r\n');

// Each row sends its head, then one byte every 100 ms (10 B/s, never idle): cut at the
// first 2 s window (idle_timeout 2s) with 408 REQUEST_TIMEOUT, nothing staged or queued.
// [label, pieces, outcome]
const rows: [string, Piece[], Outcome][] = [
  ['a small body (Content-Length 1000)', trickle(rawRequest('PUT', '/drop/files/small.bin', { 'content-length': 1000 })), 'REQUEST_TIMEOUT'],
  ['a streamed body (Content-Length 1 MiB)', trickle(rawRequest('PUT', '/drop/files/big.bin', { 'content-length': 2 ** 20 })), 'REQUEST_TIMEOUT'],
  ['a body of unknown length (chunked, announced with 103)', [rawRequest('PUT', '/drop/files/chunked.bin', { 'transfer-encoding': 'chunked' }), ...Array.from({ length: 200 }, () => '1\r\nx\r\n')], 'REQUEST_TIMEOUT'],
  ['a multipart body', trickle(multipartHead()), 'REQUEST_TIMEOUT'],
  ['a token-holder\u2019s body (the rate applies to everyone)', trickle(rawRequest('PUT', '/drop/secret/slow.bin', { 'content-length': 1000, authorization: `Bearer ${TOKEN}` })), 'REQUEST_TIMEOUT'],
  ['a legacy upload', trickle(rawRequest('POST', '/upload', { 'content-length': 1000, 'x-container-name': 'box', 'x-file-path': '/srv/files/legacy.bin' })), 'REQUEST_TIMEOUT'],
];

describe('http.min_rate (1KiB/s by default; idle_timeout 2s, so 2 s windows)', () => {
  const agent = sharedAgent({ http: '  legacy:\n    - { target: box, path_prefix: /srv/files }' });
  const counts = tally('hostile slow bodies');

  it.each(rows)('cuts %s trickled at 10 B/s with a JSON 408', async (_label, pieces, outcome) => {
    const t = agent();
    counts.tried += 1;
    const { answer, written } = await expectTasks(t, 0, () => exchange(t.url, pieces, { gapMs: 100 }));
    expectOutcome(answer, outcome);
    expect(answer?.headers.connection).toBe('close');
    expect(json<{ error: { message: string } }>(answer ?? { status: 0, headers: {}, text: '{}' }).error.message).toMatch(/slower than http\.min_rate \(1024 bytes\/s\)/);
    // Cut while still trickling: not every byte went out.
    expect(written).toBeLessThan(pieces.reduce((n, piece) => n + (typeof piece === 'symbol' ? 0 : piece.length), 0));
    counts.refused += 1;
  });

  it('lets a body at 80 KiB/s (far above the rate, over several windows) land', async () => {
    const t = agent();
    counts.tried += 1;
    const piece = Buffer.alloc(16 * 1024, 'y');
    const pieces: Piece[] = [rawRequest('PUT', '/drop/files/paced.bin', { 'content-length': piece.length * 20 }), ...Array.from({ length: 20 }, () => piece)];
    const { answer } = await expectTasks(t, 1, () => exchange(t.url, pieces, { gapMs: 200 }));
    const outcome: Outcome = '/srv/files/paced.bin';
    expect(lands(outcome)).toBe(true);
    expectOutcome(answer, outcome);
    await waitLanded(t, outcome, 'y'.repeat(piece.length * 20));
    counts.landed += 1;
  });

  it('wrote nothing outside the routes\u2019 dests', async () => {
    await expectConfined(agent(), counts);
    expect(counts.tried).toBe(rows.length + 1);
  });
});

describe('the body of a retry with an Idempotency-Key (read and hashed, never staged)', () => {
  it('is a body like any other: cut with a JSON 408 when slower than http.min_rate', async () => {
    const t = await startAgent({ idleTimeout: '2s' });
    const headers = { 'idempotency-key': 'slow-retry' };
    expect((await fetch(`${t.url}/drop/files/retried.txt`, { method: 'PUT', headers, body: 'first' })).status).toBe(202);
    // Its retry trickles at 10 B/s, never idle: without the rate it held its connection for as long as it pleased.
    const pieces = trickle(rawRequest('PUT', '/drop/files/retried.txt', { ...headers, 'content-length': 1000 }));
    const { answer, written } = await exchange(t.url, pieces, { gapMs: 100 });
    expectError(answer ?? { status: 0, headers: {}, text: '' }, 408, 'REQUEST_TIMEOUT');
    expect(written).toBeLessThan(pieces.reduce((n, piece) => n + (typeof piece === 'symbol' ? 0 : piece.length), 0));
    expect((await receiving(t)).bodies).toBe(0);
  });
});

describe('a body that its request does not read (GET /healthz, OPTIONS)', () => {
  it.each([
    ['GET', '/healthz'],
    ['OPTIONS', '/drop/files'],
  ])('%s %s: the connection ends with the answer instead of taking the trickle unmetered', async (method, target) => {
    const t = await startAgent({ idleTimeout: '2s' });
    // Kept alive (no Connection: close); one byte every 100 ms: never idle, far below min_rate.
    const head = rawRequest(method, target, { connection: [], 'content-length': 1000 });
    const pieces: Piece[] = [head, AFTER_ANSWER, ...Array.from({ length: 40 }, () => 'x')];
    const { answer, written } = await exchange(t.url, pieces, { gapMs: 100 });
    expect(answer?.status).toBeLessThan(300);
    // Before, the agent kept reading for the whole 4 s trickle (and for as long as any trickle went on).
    expect(written).toBeLessThan(head.length + 20);
  });
});
