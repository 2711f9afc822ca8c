// A raw body upload: PUT/POST <route path>/<relative path>, and the legacy POST /upload
// after it has picked its destination. Token and capacity are checked before a byte of
// the body is read; the answer goes out only once the file is fsynced and journaled.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StevedoreError } from '../errors.js';
import { newTaskId, taskJson, type FileOptions, type Task } from '../task.js';
import { digestBody, tooLarge, type Received } from '../spool/receive.js';
import { bearerToken, tokenAllows } from './auth.js';
import { expectedDigests, mismatch, type ExpectedDigest } from './checksum.js';
import { singleHeader } from './headers.js';
import type { HttpContext, Route } from './types.js';
import type { Admission } from './intake.js';
import { joinDest } from './paths.js';
import type { Body } from './receiving.js';
import { continueBody, sendJson, takesInterim } from './respond.js';

/** The request's id for the tasks it makes (journaled, and in their log lines). */
export const fromRequest = (ctx: HttpContext): { requestId?: string } => (ctx.requestId === undefined ? {} : { requestId: ctx.requestId });

/** Where one uploaded body goes. */
export interface Destination {
  route: string;
  target: string;
  dest: string;
  options: FileOptions;
  /** No token guards it: the body counts in the anonymous share of http.max_receiving. */
  anonymous: boolean;
  /** Where an Idempotency-Key is unique, when not the route (a legacy rule and its token). */
  idempotencyScope?: string;
}

export async function handleRawUpload(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, route: Route, rel: string): Promise<void> {
  requireToken(route.token, req);
  const destination = { route: route.name, target: route.target, dest: joinDest(route.dest, rel), options: route.options, anonymous: route.token === undefined };
  await acceptBody(ctx, req, res, destination);
}

export function requireToken(token: string | undefined, req: IncomingMessage): void {
  if (!tokenAllows(token, bearerToken(req.headers))) {
    throw new StevedoreError('UNAUTHORIZED', 'a valid bearer token is required (Authorization: Bearer <token>)');
  }
}

export async function acceptBody(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, to: Destination): Promise<void> {
  const length = declaredLength(req, ctx.maxBody);
  const digests = expectedDigests(req);
  const key = idempotencyKey(req);
  const { idempotencyScope, anonymous, ...where } = to;
  const scope = idempotencyScope ?? to.route;
  const uploading = key === undefined ? undefined : `${scope}\0${key}`;
  if (key !== undefined && uploading !== undefined) {
    const earlier = ctx.registry.findByIdempotencyKey(scope, key);
    if (earlier) return replayIdempotent(ctx, req, res, earlier, to, digests);
    if (ctx.uploading.has(uploading)) {
      throw new StevedoreError('IDEMPOTENCY_CONFLICT', 'a request with this Idempotency-Key is still being received');
    }
    // Claimed before the first await: a twin request arriving meanwhile must see it.
    ctx.uploading.add(uploading);
  }
  let body: Body | undefined;
  let admission: Admission | undefined;
  let committed = false;
  try {
    body = ctx.bodies.enter({ route: to.route, target: to.target, dest: to.dest, anonymous, ...announced(length) });
    admission = await ctx.intake.admit(1, length ?? 0);
    const { id } = body.entry;
    if (id !== undefined && takesInterim(req)) res.writeEarlyHints({ link: `</tasks/${id}>; rel="monitor"` });
    continueBody(req, res);
    const received = await receiveBody(ctx, req, body, admission, length);
    body.leave(); // its place is free before a Prefer: wait holds the answer
    const wrong = mismatch(digests, received.sha256);
    if (wrong) {
      await ctx.intake.discard(received);
      throw wrong;
    }
    const idempotency = key === undefined ? {} : { idempotencyKey: key, ...(idempotencyScope === undefined ? {} : { idempotencyScope }) };
    const [task] = await ctx.intake.commit([{ received, source: 'http', ...where, ...(id ? { id } : {}), ...idempotency, ...fromRequest(ctx) }]);
    committed = true;
    admission.done(); // on disk now: before a Prefer: wait holds the answer
    await answerTasks(ctx, req, res, task ? [task] : [], false);
  } finally {
    body?.leave();
    admission?.done();
    if (admission && !committed) ctx.intake.release(1);
    if (uploading) ctx.uploading.delete(uploading);
  }
}

// A body that takes a while gets its task id before its bytes: a 103 Early Hints answer
// links to /tasks/<id> (rel "monitor", RFC 5989), which reports the bytes received so far.
const ANNOUNCE_FROM = 8 * 2 ** 20;

function announced(length: number | undefined): { id?: string; expected?: number } {
  if (length !== undefined && length < ANNOUNCE_FROM) return { expected: length };
  return { id: newTaskId(), ...(length === undefined ? {} : { expected: length }) };
}

// The body's meter starts once receive() has attached its reader, and its signal cuts
// a body slower than http.min_rate.
function receiveBody(ctx: HttpContext, req: IncomingMessage, body: Body, admission: Admission, length: number | undefined): Promise<Received> {
  const receiving = ctx.intake.receive(req, { maxBytes: ctx.maxBody, onProgress: (bytes) => admission.written(bytes), signal: body.signal }, length);
  body.read(req);
  return receiving;
}

export function declaredLength(req: IncomingMessage, maxBody: number): number | undefined {
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header)) throw new StevedoreError('BAD_REQUEST', `Content-Length "${header}" is not a number`);
  const length = Number(header);
  if (length > maxBody) throw tooLarge(maxBody);
  return length;
}

function idempotencyKey(req: IncomingMessage): string | undefined {
  const key = singleHeader(req, 'idempotency-key');
  if (key === undefined) return undefined;
  const value = key.replace(/^"(.*)"$/, '$1');
  if (value.length === 0 || value.length > 255) throw new StevedoreError('BAD_REQUEST', 'Idempotency-Key must be 1 to 255 characters');
  return value;
}

// A retry gets the first request's task only when it is the same request: the same
// target and destination (checked before its body is read) and the same bytes (its
// body is hashed, not staged). Anything else is 422: its bytes would be dropped unseen.
async function replayIdempotent(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, earlier: Task, to: Destination, digests: readonly ExpectedDigest[]): Promise<void> {
  if (earlier.target !== to.target || earlier.dest !== to.dest) {
    throw keyReused(`was used for ${earlier.dest} in target ${earlier.target}, not ${to.dest} in target ${to.target}`);
  }
  const sha256 = await digestReplay(ctx, req, res, to);
  const wrong = mismatch(digests, sha256);
  if (wrong) throw wrong;
  if (sha256 !== earlier.sha256) throw keyReused(`was used for a body with sha-256 ${earlier.sha256}; this one has ${sha256}`);
  // As the first request was answered: a retry that asks to wait learns how the push ended.
  await answerTasks(ctx, req, res, [earlier], false);
}

// A retry's body is a body like any other: it takes a place among those being received
// and is cut when slower than http.min_rate. Unbounded, a trickle of retries of one key
// held as many connections as the listener takes.
async function digestReplay(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, to: Destination): Promise<string> {
  const body = ctx.bodies.enter({ route: to.route, target: to.target, dest: to.dest, anonymous: to.anonymous });
  try {
    continueBody(req, res);
    const digest = digestBody(req, ctx.maxBody, body.signal);
    body.read(req);
    return await digest;
  } finally {
    body.leave();
  }
}

const keyReused = (what: string) => new StevedoreError('IDEMPOTENCY_KEY_REUSED', `this Idempotency-Key ${what}`);

/**
 * 202 with the task(s); with `Prefer: wait=N` the answer waits up to N seconds for the
 * pushes: 200 when all landed, 502 PUSH_FAILED when one failed for good.
 */
export async function answerTasks(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, tasks: Task[], asList: boolean): Promise<void> {
  const wait = preferWait(req);
  // Nothing moves on the socket while we wait, and idle_timeout would cut the answer
  // the client asked to wait for; the wait is bounded, so the limit is lifted for it.
  if (wait > 0) req.socket.setTimeout(wait + ctx.idleTimeout);
  const settled = wait > 0 ? await Promise.all(tasks.map((t) => ctx.registry.waitFor(t.id, wait))) : tasks;
  if (wait > 0) req.socket.setTimeout(ctx.idleTimeout);
  const current = settled.map((t, i) => t ?? (tasks[i] as Task));
  const failed = wait > 0 ? current.find((t) => t.status === 'failed') : undefined;
  if (wait > 0) res.setHeader('preference-applied', `wait=${wait / 1000}`);
  if (failed) {
    const message = `the push failed for good: ${failed.error?.message ?? 'unknown error'}`;
    throw new StevedoreError('PUSH_FAILED', message, { details: { task: taskJson(failed) } });
  }
  const status = wait > 0 && current.every((t) => t.status === 'done') ? 200 : 202;
  const body = asList ? { tasks: current.map(taskJson) } : taskJson(current[0] as Task);
  sendJson(res, status, body, current.length === 1 ? { location: `/tasks/${current[0]?.id}` } : {});
}

const MAX_WAIT_SECONDS = 300;

function preferWait(req: IncomingMessage): number {
  const match = /(?:^|[,;\s])wait\s*=\s*(\d+)/i.exec(req.headersDistinct.prefer?.join(',') ?? '');
  return match ? Math.min(Number(match[1]), MAX_WAIT_SECONDS) * 1000 : 0;
}
