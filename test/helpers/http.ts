// Real HTTP clients for the API tests: node:http when the wire matters (a raw path
// that fetch would normalize, a body written piece by piece, a socket cut mid-body),
// plus the checks every test repeats (the JSON error shape, nothing left behind).
import { request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { readFile, readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { expect } from 'vitest';
import type { TestAgent } from './agent.js';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
}

/** One request with `rawPath` sent byte for byte as the request target. */
export function send(url: string, rawPath: string, { method = 'PUT', headers = {}, body }: SendOptions = {}): Promise<Answer> {
  // A Content-Length of our own: node would send a DELETE body unframed.
  const framing: Record<string, number> = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
  const upload = start(url, rawPath, method, { ...framing, ...headers });
  // A Buffer: node writes the header block together with a string body in the body's
  // encoding (UTF-8), which would re-encode latin1 header bytes.
  upload.req.end(body === undefined ? undefined : Buffer.from(body));
  return upload.answer;
}

export interface OpenUpload {
  req: ClientRequest;
  /** The answer, or the error if the connection ended without one. */
  answer: Promise<Answer>;
}

/** Starts a request and leaves the body to the caller (write, stall, destroy). */
export function open(url: string, rawPath: string, { method = 'PUT', headers = {} }: SendOptions = {}): OpenUpload {
  const upload = start(url, rawPath, method, headers);
  upload.req.flushHeaders();
  return upload;
}

function start(url: string, rawPath: string, method: string, headers: Record<string, string | number>): OpenUpload {
  const { hostname, port } = new URL(url);
  const req = request({ host: hostname, port, method, path: rawPath, headers, agent: false });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.once('response', (res) => void readAnswer(res).then(resolve, reject));
    // `on`, not `once`: a socket cut after the answer may report a second error.
    req.on('error', reject);
  });
  // A test that expects no answer must still not leave an unhandled rejection behind.
  answer.catch(() => undefined);
  return { req, answer };
}

async function readAnswer(res: IncomingMessage): Promise<Answer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') };
}

/** Adapts a fetch Response to the same shape. */
export async function fromFetch(res: Response): Promise<Answer> {
  const headers: IncomingHttpHeaders = {};
  res.headers.forEach((value, name) => (headers[name] = value));
  return { status: res.status, headers, text: await res.text() };
}

/** Writes `head` (and optionally more) on a bare TCP socket; resolves with everything read until the server closes. */
export function rawExchange(url: string, head: string | Buffer, { end = false } = {}): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => socket.write(head, () => end && socket.end()));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** Requires SPEC §3's error shape and returns the body. */
export function expectError(answer: Answer, status: number, code: string): { error: Record<string, unknown> } {
  expect({ status: answer.status, text: answer.text }).toMatchObject({ status });
  expect(answer.headers['content-type']).toMatch(/^application\/json\b/);
  const body = JSON.parse(answer.text) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toMatchObject({ code, message: expect.any(String) });
  expect(String(body.error.message).length).toBeGreaterThan(0);
  return body;
}

export const json = <T = Record<string, unknown>>(answer: Answer): T => JSON.parse(answer.text) as T;

export const spoolFiles = (t: TestAgent) => readdir(path.join(t.stateDir, 'spool'));

/** The journal's lines, parsed. */
export async function journalEntries(t: TestAgent): Promise<Record<string, unknown>[]> {
  const text = await readFile(path.join(t.stateDir, 'journal.log'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** How many tasks the agent queued (the registry logs each one once). */
export const queuedCount = (t: TestAgent) => t.logs.filter((line) => line.msg === 'task queued').length;

/** Nothing staged, nothing journaled, nothing queued. */
export async function expectNoTrace(t: TestAgent): Promise<void> {
  expect(await spoolFiles(t)).toEqual([]);
  expect(await journalEntries(t)).toEqual([]);
  expect(queuedCount(t)).toBe(0);
}

/** Resolves once the server has answered or dropped the connection; `undefined` means no answer. */
export const settled = (upload: OpenUpload) => upload.answer.then((a) => a, () => undefined);

/** A loopback port free right now (for a process that must be told its port up front). */
export { freePort } from '../../bench/lib.js';
