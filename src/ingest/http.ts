// The HTTP listener (SPEC §3) on node:http: routing, timeouts, and turning every
// failure into its JSON error. The handlers live in upload.ts, multipart.ts, legacy.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseListen } from '../config/listen.js';
import { StevedoreError, isStevedoreError } from '../errors.js';
import { handleOps, isOpsPath } from '../observe/endpoints.js';
import { connectionCap, isOutOfFiles, openFilesLimit, outOfFiles, type OutOfFilesAlarm } from '../open-files.js';
import { TASK_ID_PATTERN, taskJson } from '../task.js';
import { createBrowserCheck } from './browser.js';
import { handleLegacy } from './legacy.js';
import { handleMultipart } from './multipart.js';
import { decodeUrlPath } from './paths.js';
import { createBodies, type ReceivingStatus } from './receiving.js';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.js';
import { notAllowed, sendError, sendJson } from './respond.js';
import { isTusAtRoute } from './tus/endpoint.js';
import { createPage, isPagePath } from './ui/page.js';
import type { HttpContext, HttpOptions, Route } from './types.js';
import { handleRawUpload } from './upload.js';
import { checkHead, guardWire } from './wire.js';

export interface HttpServer {
  listen(): Promise<AddressInfo>;
  /**
   * The start of a stop (SPEC §6): new requests are answered 503 SHUTTING_DOWN, but for
   * the reads that watch a drain (health, status, metrics, a task); waits up to
   * `graceMs` for the requests in progress. The listener stays open until close().
   */
  drain(graceMs: number): Promise<void>;
  /** Stops listening and cuts every connection left. */
  close(): Promise<void>;
  /** A reload: new routes, legacy rules and browser rules for the requests that come next. */
  update(options: Pick<HttpOptions, 'routes' | 'legacy' | 'allowedHosts' | 'allowedOrigins' | 'ui'>): void;
  /** The bodies being received now (GET /status). */
  receiving(): ReceivingStatus;
}

export function createHttpServer(options: HttpOptions): HttpServer {
  const byLength = (routes: Route[]) => [...routes].sort((a, b) => b.path.length - a.path.length);
  const ctx: HttpContext = {
    ...options,
    routes: byLength(options.routes),
    uploading: new Set(),
    bodies: createBodies({ ...options.receiving, idleTimeout: options.idleTimeout }),
    checkBrowser: createBrowserCheck(options),
    page: createPage(),
  };
  let server: Server | undefined;
  let closing = false;
  const active = new Set<Promise<void>>();

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const done = handle(forRequest(ctx, req, res), req, res, closing).finally(() => active.delete(done));
    active.add(done);
  };

  return {
    async listen() {
      const { host, port } = parseListen(options.listen);
      // No whole-request deadline (a slow 2 GiB upload is fine); the socket's idle
      // timeout aborts a body that stops moving, headersTimeout a slowloris.
      // requireHostHeader: false, so that the refusal of a missing Host (RFC 9112 §3.2) is ours, in JSON.
      server = createServer({ requestTimeout: 0, ...headDeadline(options.idleTimeout), requireHostHeader: false }, onRequest);
      server.timeout = options.idleTimeout;
      // Otherwise node answers "Expect: 100-continue" itself, before the token and
      // capacity checks; the handlers send 100 once they are ready for the body.
      server.on('checkContinue', onRequest);
      guardWire(server);
      server.keepAliveTimeout = 5000;
      limitConnections(server, options.outOfFiles);
      await new Promise<void>((resolve, reject) => {
        const failed = (error: Error) => reject(new StevedoreError('LISTEN_FAILED', `cannot listen on ${options.listen}: ${error.message}`, { cause: error }));
        server?.once('error', failed).listen(port, host, () => {
          server?.off('error', failed);
          resolve();
        });
      });
      // Once listening, an 'error' is an accept that failed, EMFILE when descriptors run
      // out: a second one with no listener left would have ended the process.
      server.on('error', (error) => {
        if (isOutOfFiles(error)) options.outOfFiles.note(error, { during: 'accept' });
        else options.logger.error({ err: error }, 'the listener failed to accept a connection');
      });
      return server.address() as AddressInfo;
    },
    update({ routes, legacy, allowedHosts, allowedOrigins, ui }) {
      ctx.routes = byLength(routes);
      ctx.legacy = legacy;
      ctx.ui = ui;
      ctx.checkBrowser = createBrowserCheck({ listen: options.listen, allowedHosts, allowedOrigins });
    },
    receiving: () => ctx.bodies.status(),
    async drain(graceMs) {
      closing = true;
      const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([Promise.all(active), grace]);
    },
    async close() {
      closing = true;
      if (!server) return;
      const closed = new Promise<void>((resolve) => server?.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * A head not in within idle_timeout is answered 408 (node checks every
 * `connectionsCheckingInterval`). The socket's own idle timeout, also idle_timeout,
 * would close a silent connection without a word at that very moment: the head's
 * deadline falls two checks before it.
 */
function headDeadline(idleTimeout: number): { headersTimeout: number; connectionsCheckingInterval: number } {
  const head = Math.min(idleTimeout, 60_000);
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(head / 4)));
  return { headersTimeout: Math.max(connectionsCheckingInterval, head - 2 * connectionsCheckingInterval), connectionsCheckingInterval };
}

// The context of one request: its id, echoed in the answer, and a child logger that
// carries it on every line about the request.
function forRequest(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): HttpContext {
  const requestId = requestIdOf(req);
  res.setHeader(REQUEST_ID_HEADER, requestId);
  return { ...ctx, requestId, logger: ctx.logger.child({ reqId: requestId }) };
}

async function handle(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, closing: boolean): Promise<void> {
  try {
    if (closing && !answersWhileStopping(req)) {
      res.setHeader('connection', 'close');
      throw new StevedoreError('SHUTTING_DOWN', 'the agent is shutting down');
    }
    checkHead(req);
    ctx.checkBrowser(req);
    await dispatch(ctx, req, res);
  } catch (error) {
    if (isStevedoreError(error, 'CLIENT_ABORTED')) {
      ctx.logger.info({ method: req.method, url: req.url }, 'client aborted mid-body; nothing queued');
      return;
    }
    const failure = isStevedoreError(error) ? error : isOutOfFiles(error) ? outOfFiles(error) : new StevedoreError('INTERNAL', 'internal error', { cause: error });
    if (failure.code === 'TOO_MANY_OPEN_FILES') ctx.outOfFiles.note(failure, { method: req.method, url: req.url });
    else {
      // A stack only for what no code names: the rest (a full queue, no spool, a push
      // that failed) is a known state, said by its message and code.
      const internal = failure.code === 'INTERNAL';
      const level = internal ? 'error' : failure.status >= 500 ? 'warn' : 'info';
      ctx.logger[level]({ method: req.method, url: req.url, code: failure.code, err: internal ? error : undefined }, failure.message);
    }
    sendError(req, res, failure, failure.code === 'PUSH_FAILED' ? failure.details : {});
  } finally {
    if (!req.complete) closeAfterAnswer(req, res);
  }
}

// An answer sent while its request's body still comes in (a GET /healthz with a body, a
// PATCH ended by the next request for its upload): on a kept-alive connection node
// reads the rest, metered by neither http.min_rate nor http.max_receiving, for as long
// as it trickles in. The connection ends with the answer instead.
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (res.writableFinished) req.socket.destroySoon();
  else res.once('finish', () => req.socket.destroySoon());
}

// What an operator watching a stop asks: is it alive, what is left, how did a task end.
const READS_WHILE_STOPPING = new Set(['/healthz', '/readyz', '/status', '/metrics']);
function answersWhileStopping(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = rawPath(req);
  return READS_WHILE_STOPPING.has(path) || path.startsWith('/tasks/');
}

async function dispatch(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = rawPath(req);
  if (path === '/healthz') return getOnly(req, () => sendJson(res, 200, { status: 'ok' }));
  if (path === '/readyz') return getOnly(req, () => sendReadiness(ctx, res));
  if (path.startsWith('/tasks/')) return getOnly(req, () => sendTask(ctx, res, path.slice('/tasks/'.length)));
  if (path === '/upload') return postOnly(req, ['POST'], () => handleLegacy(ctx, req, res));
  if (path.startsWith('/uploads/')) return ctx.tus.atUpload(ctx, req, res, path.slice('/uploads/'.length));
  if (isOpsPath(path)) return handleOps(ctx.ops, req, res, path);
  if (ctx.ui && isPagePath(path)) return getOnly(req, () => ctx.page(req, res, path, ctx.routes));
  const route = ctx.routes.find((r) => path === r.path || path.startsWith(`${r.path}/`));
  if (!route) throw new StevedoreError('NOT_FOUND', `no route for ${path}`);
  const rawRel = path.slice(route.path.length + 1);
  if (isTusAtRoute(req, rawRel)) return ctx.tus.atRoute(ctx, req, res, route);
  // The route's root also takes tus: OPTIONS, and POST with Tus-Resumable.
  return postOnly(req, rawRel === '' ? ['PUT', 'POST', 'OPTIONS'] : ['PUT', 'POST'], () => {
    // decodeUrlPath forgives one leading "/", which here would be an empty segment.
    if (rawRel.startsWith('/')) throw new StevedoreError('BAD_PATH', 'path segment 1 is empty ("//")');
    if (isMultipart(req)) {
      if (req.method !== 'POST') throw notAllowed(['POST'], 'multipart uploads use POST');
      return handleMultipart(ctx, req, res, route, rawRel === '' ? '' : decodeUrlPath(rawRel));
    }
    return handleRawUpload(ctx, req, res, route, decodeUrlPath(rawRel));
  });
}

// The request target as sent, query cut off. Not `new URL()`: it resolves "..",
// "%2e%2e" and backslashes before we see them, so "/drop/a/../b" would land as
// "/drop/b" (or in another route) instead of being refused as BAD_PATH (SPEC §3).
function rawPath(req: IncomingMessage): string {
  // An absolute-form target ("http://host/drop/x", RFC 9112 §3.2.2) loses its origin.
  const target = (req.url ?? '/').replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?]*/i, '') || '/';
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}

async function getOnly(req: IncomingMessage, answer: () => unknown): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw notAllowed(['GET', 'HEAD']);
  await answer();
}

async function postOnly(req: IncomingMessage, methods: string[], answer: () => Promise<void>): Promise<void> {
  if (!methods.includes(req.method ?? '')) throw notAllowed(methods);
  await answer();
}


const isMultipart = (req: IncomingMessage) => /^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '');

function sendTask(ctx: HttpContext, res: ServerResponse, id: string): void {
  const task = TASK_ID_PATTERN.test(id) ? ctx.registry.get(id) : undefined;
  const receiving = task ? undefined : ctx.bodies.get(id);
  if (receiving) {
    const { expected, received, createdAt, anonymous: _anonymous, ...where } = receiving;
    return sendJson(res, 200, { ...where, status: 'receiving', bytes_received: received, ...(expected === undefined ? {} : { bytes_expected: expected }), created_at: createdAt });
  }
  if (!task) throw new StevedoreError('NOT_FOUND', `no task ${id.slice(0, 64)} (finished tasks are kept for a while, not forever)`);
  sendJson(res, 200, taskJson(task));
}

async function sendReadiness(ctx: HttpContext, res: ServerResponse): Promise<void> {
  const problems = [...(await ctx.readiness()), ...ctx.bodies.problems()];
  if (problems.length === 0) sendJson(res, 200, { status: 'ready' });
  else sendJson(res, 503, { status: 'not_ready', problems });
}

// With the open-files limit known, the listener takes at most connectionCap() of them
// at once: a connection past it is closed at accept (node's maxConnections), before it
// holds a descriptor that the files of the connections already taken need.
function limitConnections(server: Server, alarm: OutOfFilesAlarm): void {
  const limit = openFilesLimit();
  if (limit === undefined) return;
  server.maxConnections = connectionCap(limit);
  server.on('drop', () => alarm.note(undefined, { refused: 'a connection', maxConnections: server.maxConnections }));
}
