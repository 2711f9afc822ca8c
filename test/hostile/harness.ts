// What the hostile suites share: one real agent per describe that takes the whole
// table, raw bytes over a bare socket (nothing normalizes them), and the checks every
// row ends with: the answer SPEC §3 names, the agent still serving, nothing staged,
// and after the table, nothing written outside the routes' dests.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { errorStatus, type ErrorCode } from '../../src/errors.js';
import { launchAgent, type StartOptions, type TestAgent } from '../helpers/agent.js';
import { expectError, json, queuedCount, spoolFiles, type Answer } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

/** Every name an attack tries to write ends in this, so an escape is easy to spot. */
export const MARKER = 'hostile-pwned';
export const TOKEN = 's3cret-token';

/** One agent for the describe's tests, started before the first and removed after the last. */
export function sharedAgent(options: StartOptions = {}): () => TestAgent {
  let t: TestAgent | undefined;
  beforeAll(async () => {
    t = await launchAgent({ ...options, dir: await mkdtemp(path.join(tmpdir(), 'stevedore-hostile-')) });
  });
  afterAll(async () => {
    await t?.close();
    if (t) await rm(t.dir, { recursive: true, force: true });
  });
  return () => {
    if (!t) throw new Error('the shared agent did not start');
    return t;
  };
}

export interface Exchange {
  /** Every answer read, interim (1xx) ones included, in order. */
  answers: Answer[];
  /** The first final answer, if any. */
  answer?: Answer;
  /** Bytes we managed to write before the agent closed. */
  written: number;
}

/** In exchange()'s pieces: wait for the agent's answer, then write the rest. */
export const AFTER_ANSWER = Symbol('after the answer');
export type Piece = string | Buffer | typeof AFTER_ANSWER;

/**
 * Writes `pieces` on a bare socket one after the other (`gapMs` apart) and reads until
 * the agent closes it. Writing stops once the agent has given a final answer (as a
 * client would; a 100 or 103 does not stop it), unless an AFTER_ANSWER piece waits for
 * that answer; an error just ends the read. `end` half-closes after the last piece.
 */
export function exchange(url: string, pieces: Piece | Piece[], { end = false, gapMs = 0 } = {}): Promise<Exchange> {
  const { port } = new URL(url);
  const queue = Array.isArray(pieces) ? pieces : [pieces];
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    /** Final answers already waited for by an AFTER_ANSWER piece. */
    let answered = 0;
    let written = 0;
    const finals = () => parseAnswers(Buffer.concat(chunks)).filter((answer) => answer.status >= 200).length;
    const socket = connect(Number(port), '127.0.0.1');
    const next = (i: number): void => {
      const piece = queue[i];
      if (socket.destroyed || socket.writableEnded) return;
      if (typeof piece === 'symbol') {
        const go = () => ((answered = finals()), next(i + 1));
        return void (finals() > answered ? go() : socket.once('data', () => setImmediate(() => next(i))));
      }
      if (finals() > answered) return;
      if (piece === undefined) return void (end && socket.end());
      const bytes = Buffer.from(piece);
      socket.write(bytes, (error) => {
        if (error) return;
        written += bytes.length;
        if (gapMs > 0) setTimeout(() => next(i + 1), gapMs);
        else next(i + 1);
      });
    };
    socket.once('connect', () => next(0));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      const answers = parseAnswers(Buffer.concat(chunks));
      resolve({ answers, answer: answers.find((a) => a.status >= 200), written });
    });
  });
}

/** Splits what a server wrote into answers (Content-Length framing, as the agent and node write them). */
export function parseAnswers(raw: Buffer): Answer[] {
  const answers: Answer[] = [];
  let rest = raw;
  for (;;) {
    const split = rest.indexOf('\r\n\r\n');
    if (split === -1) return answers;
    const [statusLine = '', ...lines] = rest.subarray(0, split).toString('latin1').split('\r\n');
    const headers: IncomingHttpHeaders = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const body = rest.subarray(split + 4, split + 4 + length);
    answers.push({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, text: body.toString('utf8') });
    rest = rest.subarray(split + 4 + length);
  }
}

/**
 * A raw HTTP/1.1 request. `Host` and `Connection: close` (so that the agent ends the
 * exchange) unless `headers` says otherwise; an array repeats a field, [] leaves it out.
 */
export function rawRequest(method: string, target: string, headers: Record<string, string | number | (string | number)[]>, body: string | Buffer = ''): Buffer {
  const fields = Object.entries({ host: '127.0.0.1', connection: 'close', ...headers }).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${name}: ${v}`));
  return Buffer.concat([Buffer.from(`${[`${method} ${target} HTTP/1.1`, ...fields].join('\r\n')}\r\n\r\n`), Buffer.from(body)]);
}

/**
 * What a row expects: an error code (its status from src/errors.ts, SPEC §3's JSON
 * shape), a bare status node:http answers itself before the agent sees the request
 * ('400', '431'), or a container path (starting with "/") where the file lands.
 */
export type Outcome = ErrorCode | `${number}` | `/${string}`;

export const lands = (outcome: Outcome): outcome is `/${string}` => outcome.startsWith('/');

export function expectOutcome(answer: Answer | undefined, outcome: Outcome): void {
  expect(answer, 'the agent answered').toBeDefined();
  const got = answer as Answer;
  if (lands(outcome)) {
    // A raw upload answers its task, a multipart one {"tasks": [...]}.
    const body = json<{ dest?: string; tasks?: { dest: string }[] }>(got);
    expect({ status: got.status, dests: body.tasks?.map((task) => task.dest) ?? [body.dest] }).toEqual({ status: 202, dests: [outcome] });
  } else if (/^\d{3}$/.test(outcome)) {
    // node:http's parser refused it before the agent's handlers; the agent still answers in SPEC's JSON shape.
    expect(got.status).toBe(Number(outcome));
    expect(got.headers['content-type']).toBe('application/json');
    expect(json<{ error: { code: string } }>(got).error.code).toMatch(/^[A-Z_]+$/);
  } else {
    expectError(got, errorStatus[outcome as ErrorCode] ?? 500, outcome);
  }
}

export const landedFile = (t: TestAgent, dest: string) => path.join(t.root, dest);

export async function waitLanded(t: TestAgent, dest: string, content: string): Promise<void> {
  const file = landedFile(t, dest);
  await waitFor(() => readFile(file, 'utf8').then((text) => text === content, () => false), { timeoutMs: 10_000, what: `${dest} to land` });
}

let serial = 0;

/** GET /healthz answers 200 and a good upload lands. */
export async function expectStillServes(t: TestAgent): Promise<void> {
  expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  const name = `still-serving-${++serial}`;
  const res = await fetch(`${t.url}/drop/files/ok/${name}.txt`, { method: 'PUT', body: name });
  expect(res.status).toBe(202);
  await waitLanded(t, `/srv/files/ok/${name}.txt`, name);
}

/**
 * Runs one hostile exchange and requires that it queued `tasks` tasks (exactly, or
 * [at least, at most]) besides the check upload, and that it left nothing staged.
 */
export async function expectTasks<T>(t: TestAgent, tasks: number | readonly [number, number], attack: () => Promise<T>): Promise<T> {
  const before = queuedCount(t);
  const result = await attack();
  await expectStillServes(t);
  const [least, most] = typeof tasks === 'number' ? [tasks, tasks] : tasks;
  const queued = queuedCount(t) - before - 1;
  expect(queued >= least && queued <= most, `tasks queued by the attack: ${queued}, expected ${least}..${most}`).toBe(true);
  await waitFor(async () => (await spoolFiles(t)).length === 0, { timeoutMs: 10_000, what: 'the spool to be empty' });
  return result;
}

async function walk(dir: string, base = dir): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const nested = await Promise.all(
    entries.map((e) => (e.isDirectory() ? walk(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))])),
  );
  return nested.flat();
}

/**
 * Everything written outside the routes' dests: files under the target root but not
 * under srv/files or srv/secret, entries of the agent's dir besides box/ and state/,
 * and marker names under state/ and in the places an escape from the root would reach.
 */
export async function writtenOutside(t: TestAgent): Promise<string[]> {
  const inRoot = (await walk(t.root)).filter((rel) => !/^srv\/(files|secret)\//.test(rel)).map((rel) => path.join(t.root, rel));
  const inDir = (await readdir(t.dir)).filter((name) => name !== 'box' && name !== 'state').map((name) => path.join(t.dir, name));
  const reachable = [t.root, path.join(t.root, 'srv'), t.dir, tmpdir(), '/', '/etc', '/srv', '/tmp'];
  const marked = await Promise.all(
    reachable.map(async (dir) => (await readdir(dir).catch(() => [])).filter((name) => name.includes(MARKER)).map((name) => path.join(dir, name))),
  );
  const inState = (await walk(t.stateDir)).filter((rel) => rel.includes(MARKER)).map((rel) => path.join(t.stateDir, rel));
  return [...inRoot, ...inDir, ...inState, ...marked.flat()];
}

export interface Words {
  tried?: string;
  refused?: string;
  /** Appended in parentheses, computed when the line is printed. */
  note?: () => string;
}

/** Counts a describe's rows and prints its one summary line when it ends. */
export function tally(title: string, { tried = 'tried', refused = 'refused as expected', note = () => '' }: Words = {}) {
  const counts = { tried: 0, refused: 0, landed: 0, outside: Number.NaN };
  afterAll(() => {
    const landed = counts.landed ? `, ${counts.landed} landed inside dest` : '';
    const outside = Number.isNaN(counts.outside) ? 'not checked' : counts.outside;
    const extra = note();
    // eslint-disable-next-line no-console -- the issue asks each hostile suite to print what it tried
    console.log(`${title}: ${counts.tried} ${tried}, ${counts.refused} ${refused}${landed}, ${outside} written outside dest${extra ? ` (${extra})` : ''}`);
  });
  return counts;
}

/** The last test of a describe: nothing was written outside the dests, and the tally learns so. */
export async function expectConfined(t: TestAgent, counts: { outside: number }): Promise<void> {
  const outside = await writtenOutside(t);
  counts.outside = outside.length;
  expect(outside).toEqual([]);
}
