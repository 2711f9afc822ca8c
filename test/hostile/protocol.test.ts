// Hostile HTTP edges to one agent (issue 10, items 9, 10 and 14): every checksum sent is
// checked (both headers, every sha-256 of Content-Digest), more header fields than node
// keeps is 431 rather than a request with fields dropped, a repeated single-valued field
// is 400 (node would join it with ", " or keep the first), and the framing the agent does
// not speak is refused in JSON: a transfer coding besides chunked, an Expect it cannot
// meet, CONNECT. HTTP/1.0 clients get no 1xx answer.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_HEADER_FIELDS } from '../../src/ingest/wire.js';
import { json, type Answer } from '../helpers/http.js';
import { TOKEN, expectConfined, expectOutcome, expectTasks, exchange, lands, rawRequest, sharedAgent, tally, waitLanded, type Outcome } from './harness.js';

type Fields = Parameters<typeof rawRequest>[2];
const BODY = 'payload';
const digest = (text: string) => createHash('sha256').update(text).digest();
const RIGHT = { hex: digest(BODY).toString('hex'), sf: `sha-256=:${digest(BODY).toString('base64')}:` };
const WRONG = { hex: digest('other').toString('hex'), sf: `sha-256=:${digest('other').toString('base64')}:` };
const SHA512 = `sha-512=:${createHash('sha512').update(BODY).digest('base64')}:`;
/** `n` filler fields, so that a request carries that many besides its own. */
const filler = (n: number): Fields => ({ 'x-f': Array.from({ length: n }, () => 'v') });
const LEGACY = '  legacy:\n    - { target: box, path_prefix: /srv/files }';
const legacy = (fields: Fields) => ({ 'x-container-name': 'box', 'x-file-path': '/srv/files/legacy/p@.txt', ...fields });
const chunked = (fields: Fields) => rawRequest('PUT', '/drop/files/p/@.txt', { 'transfer-encoding': 'chunked', ...fields }, `${BODY.length}\r\n${BODY}\r\n0\r\n\r\n`);

// Every row sends "payload" ("@" in a path stands for the row's number).
// [label, the request, outcome]
const rows: [string, Buffer, Outcome][] = [
  // item 9: every checksum present must match
  ['X-Checksum-Sha256 right, Content-Digest wrong', put({ 'x-checksum-sha256': RIGHT.hex, 'content-digest': WRONG.sf }), 'CHECKSUM_MISMATCH'],
  ['X-Checksum-Sha256 wrong, Content-Digest right', put({ 'x-checksum-sha256': WRONG.hex, 'content-digest': RIGHT.sf }), 'CHECKSUM_MISMATCH'],
  ['X-Checksum-Sha256 and Content-Digest both right', put({ 'x-checksum-sha256': RIGHT.hex, 'content-digest': RIGHT.sf }), '/srv/files/p/@.txt'],
  ['Content-Digest: a right sha-256, then a wrong one', put({ 'content-digest': `${RIGHT.sf}, ${WRONG.sf}` }), 'CHECKSUM_MISMATCH'],
  ['Content-Digest: a wrong sha-256, then a right one', put({ 'content-digest': `${WRONG.sf}, ${RIGHT.sf}` }), 'CHECKSUM_MISMATCH'],
  ['two Content-Digest fields, right then wrong (one list)', put({ 'content-digest': [RIGHT.sf, WRONG.sf] }), 'CHECKSUM_MISMATCH'],
  ['two Content-Digest fields, both right', put({ 'content-digest': [RIGHT.sf, RIGHT.sf] }), '/srv/files/p/@.txt'],
  ['Content-Digest with only sha-512 (not verified here: refused, not ignored)', put({ 'content-digest': SHA512 }), 'BAD_REQUEST'],
  ['Content-Digest with sha-512 and a right sha-256', put({ 'content-digest': `${SHA512}, ${RIGHT.sf}` }), '/srv/files/p/@.txt'],
  ['a multipart body whose Content-Digest is wrong beside a right X-Checksum-Sha256', multipart(), 'CHECKSUM_MISMATCH'],
  [`${MAX_HEADER_FIELDS} header fields, a wrong checksum the last`, put({ ...filler(MAX_HEADER_FIELDS - 4), 'x-checksum-sha256': WRONG.hex }), 'CHECKSUM_MISMATCH'],
  [`${MAX_HEADER_FIELDS + 1} header fields, a wrong checksum the last (node would drop it)`, put({ ...filler(MAX_HEADER_FIELDS - 3), 'x-checksum-sha256': WRONG.hex }), 'HEADERS_TOO_LARGE'],
  ['1,500 short header fields (12 KiB, under node\u2019s 16 KiB)', put(filler(1500)), 'HEADERS_TOO_LARGE'],
  // item 10: a repeated single-valued field
  ['two X-Checksum-Sha256, both right', put({ 'x-checksum-sha256': [RIGHT.hex, RIGHT.hex] }), 'BAD_REQUEST'],
  ['two Idempotency-Key', put({ 'idempotency-key': ['a', 'b'] }), 'BAD_REQUEST'],
  ['two Host fields', put({ host: ['127.0.0.1', '127.0.0.1'] }), 'BAD_REQUEST'],
  ['two Authorization fields, the route\u2019s token first (node keeps only the first)', rawRequest('PUT', '/drop/secret/p/@.txt', { 'content-length': BODY.length, authorization: [`Bearer ${TOKEN}`, 'Bearer other'] }, BODY), 'BAD_REQUEST'],
  ['two Host fields, the second one foreign', put({ host: ['127.0.0.1', 'evil.example'] }), 'BAD_REQUEST'],
  ['legacy: two X-File-Path', rawRequest('POST', '/upload', { 'content-length': 7, ...legacy({ 'x-file-path': ['/srv/files/a.txt', '/srv/files/b.txt'] }) }, BODY), 'BAD_REQUEST'],
  ['legacy: two X-Container-Name', rawRequest('POST', '/upload', { 'content-length': 7, ...legacy({ 'x-container-name': ['box', 'box'] }) }, BODY), 'BAD_REQUEST'],
  ['legacy: one of each (the check row)', rawRequest('POST', '/upload', { 'content-length': 7, ...legacy({}) }, BODY), '/srv/files/legacy/p@.txt'],
  ['two Prefer fields (a list, allowed)', put({ prefer: ['respond-async', 'wait=0'] }), '/srv/files/p/@.txt'],
  // item 14: framing the agent does not speak
  ['Transfer-Encoding: gzip, chunked (would be stored compressed)', chunked({ 'transfer-encoding': 'gzip, chunked' }), 'UNSUPPORTED_TRANSFER_CODING'],
  ['Transfer-Encoding: gzip, then a second field chunked', chunked({ 'transfer-encoding': ['gzip', 'chunked'] }), 'UNSUPPORTED_TRANSFER_CODING'],
  ['Transfer-Encoding: Chunked', chunked({ 'transfer-encoding': 'Chunked' }), '/srv/files/p/@.txt'],
  ['Expect: 200-ok', put({ expect: '200-ok' }), 'EXPECTATION_FAILED'],
  ['CONNECT to another host', rawRequest('CONNECT', 'example.com:443', { host: 'example.com:443' }), 'METHOD_NOT_ALLOWED'],
];

function put(fields: Fields): Buffer {
  return rawRequest('PUT', '/drop/files/p/@.txt', { 'content-length': BODY.length, ...fields }, BODY);
}

function multipart(): Buffer {
  const body = `--b\r\nContent-Disposition: form-data; name="f"; filename="mp.txt"\r\n\r\n${BODY}\r\n--b--\r\n`;
  const sha = digest(body);
  const fields = { 'content-type': 'multipart/form-data; boundary=b', 'content-length': body.length, 'x-checksum-sha256': sha.toString('hex'), 'content-digest': WRONG.sf };
  return rawRequest('POST', '/drop/files/p', fields, body);
}

describe('hostile HTTP edges', () => {
  const agent = sharedAgent({ http: LEGACY });
  const counts = tally('hostile HTTP edges');

  it.each(rows.map(([label, request, outcome], i) => [label, request, outcome, i] as const))('%s', async (_label, request, outcome, i) => {
    const t = agent();
    counts.tried += 1;
    const expected = outcome.replace('@', String(i)) as Outcome;
    const bytes = Buffer.from(request.toString('latin1').replaceAll('@', String(i)), 'latin1');
    const { answer } = await expectTasks(t, lands(expected) ? 1 : 0, () => exchange(t.url, bytes));
    expectOutcome(answer, expected);
    if (expected === 'METHOD_NOT_ALLOWED') expect(answer?.headers.allow).toBeTruthy();
    if (!lands(expected)) return void (counts.refused += 1);
    await waitLanded(t, expected, BODY);
    counts.landed += 1;
  });

  it('wrote nothing outside the routes\u2019 dests', async () => {
    await expectConfined(agent(), counts);
    expect(counts.refused + counts.landed).toBe(rows.length);
  });
});

const MiB = 2 ** 20;
const http10 = (request: Buffer) => Buffer.from(request.toString('latin1').replace(/^(\S+ \S+) HTTP\/1\.1/, '$1 HTTP/1.0'), 'latin1');
const statuses = (answers: Answer[]) => answers.map((a) => a.status);

describe('interim answers (1xx) and HTTP/1.0', () => {
  const agent = sharedAgent();
  const big = Buffer.alloc(8 * MiB, 7);
  const large = (name: string, fields: Fields = {}) => rawRequest('PUT', `/drop/files/${name}`, { 'content-length': big.length, ...fields }, big);

  it('an 8 MiB upload over HTTP/1.1 gets its 103 Early Hints, then 202', async () => {
    const t = agent();
    const { answers } = await expectTasks(t, 1, () => exchange(t.url, large('big11.bin')));
    expect(statuses(answers)).toEqual([103, 202]);
  });

  it('the same over HTTP/1.0 gets no 103: only its 202', async () => {
    const t = agent();
    const { answers } = await expectTasks(t, 1, () => exchange(t.url, http10(large('big10.bin'))));
    expect(statuses(answers)).toEqual([202]);
    expect(json(answers[0] as Answer).bytes).toBe(big.length);
  });

  it('Expect: 100-continue over HTTP/1.0 is ignored (no 100), the body still lands', async () => {
    const t = agent();
    const { answers } = await expectTasks(t, 1, () => exchange(t.url, http10(rawRequest('PUT', '/drop/files/expect10.txt', { 'content-length': BODY.length, expect: '100-continue' }, BODY))));
    expect(statuses(answers)).toEqual([202]);
    await waitLanded(t, '/srv/files/expect10.txt', BODY);
  });

  it('HTTP/1.0 without Host is taken (Host is HTTP/1.1\u2019s)', async () => {
    const t = agent();
    const { answers } = await expectTasks(t, 1, () => exchange(t.url, http10(rawRequest('PUT', '/drop/files/nohost10.txt', { host: [], 'content-length': BODY.length }, BODY))));
    expect(statuses(answers)).toEqual([202]);
  });
});
