// tus 1.0 on every route (SPEC §8): OPTIONS and POST at the route's own path, HEAD,
// PATCH and DELETE at /uploads/<id>. Our checks come first, with our codes: the route's
// token, the tus version, the upload's length (max_body) and name (BAD_PATH), capacity
// and min_free, and a body's place among those being received; then @tus/server runs
// the protocol over our store, and its answer is written here.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MemoryLocker, Server, type Locker } from '@tus/server';
import { NodeRequest } from 'srvx/node';
import { StevedoreError } from '../../errors.js';
import { TASK_ID_PATTERN } from '../../task.js';
import { randomName } from '../../random.js';
import { joinDest } from '../paths.js';
import { continueBody, notAllowed } from '../respond.js';
import type { TusEndpoint } from '../types.js';
import { declaredLength, requireToken } from '../upload.js';
import { currentCall, runCall, type Creation, type TusCall } from './call.js';
import { CHECKSUM_ALGORITHMS, uploadChecksum } from './checksum.js';
import { fromAnswer, fromLibrary } from './errors.js';
import { checkMediaType, checkPatch, checkTusVersion, uploadLength, uploadName } from './headers.js';
import { servePatch } from './patch.js';
import type { UploadStore } from './store.js';

/** True for a request at a route's own path that is tus's, not a raw or multipart upload. */
export const isTusAtRoute = (req: IncomingMessage, rel: string): boolean =>
  rel === '' && (req.method === 'OPTIONS' || (req.method === 'POST' && req.headers['tus-resumable'] !== undefined));

const UPLOAD_METHODS = ['HEAD', 'PATCH', 'DELETE', 'OPTIONS'];

export function createTusEndpoint(store: UploadStore): TusEndpoint {
  const locker = new MemoryLocker();
  const server = createServer(store, locker);
  return {
    async atRoute(ctx, req, res, route) {
      requireToken(route.token, req);
      const call: TusCall = { ctx, req, id: randomName(16) };
      if (req.method === 'OPTIONS') return serve(server, call, res);
      checkTusVersion(req);
      const length = uploadLength(req, ctx.maxBody);
      const dest = joinDest(route.dest, uploadName(req));
      call.creation = { route: route.name, target: route.target, dest, options: route.options, anonymous: route.token === undefined };
      call.checksum = uploadChecksum(req);
      // Capacity and min_free for the whole upload, before any byte; the queue slot is
      // taken again when the last byte is in (an upload may pause for hours).
      const check = await ctx.intake.admit(1, length);
      check.done();
      ctx.intake.release(1);
      if (!hasBody(req)) return serve(server, call, res);
      checkMediaType(req);
      return serveBody(call, call.creation, declaredLength(req, ctx.maxBody) ?? length, () => serve(server, call, res), res);
    },
    async atUpload(ctx, req, res, id) {
      const record = TASK_ID_PATTERN.test(id) ? store.record(id) : undefined;
      if (!record) throw new StevedoreError('NOT_FOUND', `no upload ${id.slice(0, 64)} (finished, terminated and expired uploads are removed)`);
      const route = ctx.routes.find((r) => r.name === record.route);
      if (!route) throw new StevedoreError('NOT_FOUND', `upload ${id}: its route ${record.route} is no longer configured`);
      requireToken(route.token, req);
      if (!UPLOAD_METHODS.includes(req.method ?? '')) throw notAllowed(UPLOAD_METHODS);
      const call: TusCall = { ctx, req, id };
      if (req.method === 'OPTIONS') return serve(server, call, res);
      checkTusVersion(req);
      if (req.method !== 'PATCH') return serve(server, call, res);
      checkPatch(req);
      call.checksum = uploadChecksum(req);
      return serveBody(call, record, declaredLength(req, ctx.maxBody) ?? record.size, () => servePatch(call, store, locker, res), res);
    },
  };
}

function createServer(store: UploadStore, locker: Locker): Server {
  return new Server({
    path: '/uploads',
    datastore: store,
    locker,
    relativeLocation: true,
    // Same-origin only, like the rest of the API: no CORS headers for any origin.
    allowedOrigins: [],
    disableTerminationForFinishedUploads: true,
    maxSize: () => currentCall().ctx.maxBody,
    namingFunction: () => currentCall().id,
    getFileIdFromRequest: () => currentCall().id,
    onUploadFinish: async (_req, upload) => ({ headers: { link: `</tasks/${store.taskOf(upload.id)}>; rel="monitor"` } }),
    onResponseError: (_req, error) => {
      const failure = fromLibrary(error);
      currentCall().failure = failure;
      return { status_code: failure.status, body: failure.message };
    },
  });
}

const hasBody = (req: IncomingMessage) => (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;

// A body takes a place among those being received (http.max_receiving, min_rate) and
// holds its bytes against min_free until they are written, like a raw upload's.
async function serveBody(call: TusCall, where: Creation, expected: number, serve: () => Promise<void>, res: ServerResponse): Promise<void> {
  const { ctx, req } = call;
  call.body = ctx.bodies.enter({ route: where.route, target: where.target, dest: where.dest, anonymous: where.anonymous, expected });
  try {
    call.admission = await ctx.intake.admit(0, expected);
    continueBody(req, res);
    res.setHeader('tus-resumable', '1.0.0');
    await serve();
  } finally {
    call.body.leave();
    call.admission?.done();
  }
}

// The library's answer, written here: its errors thrown as ours (http.ts answers them
// in JSON), its CORS headers and the text/plain of its empty bodies left out, and the
// checksum algorithms added to OPTIONS.
async function serve(server: Server, call: TusCall, res: ServerResponse): Promise<void> {
  const response = await runCall(call, () => server.handleWeb(new NodeRequest({ req: call.req, res })));
  res.setHeader('tus-resumable', '1.0.0');
  if (call.failure) throw call.failure;
  const text = await response.text();
  if (response.status >= 400) throw fromAnswer(response.status, text);
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (!name.startsWith('access-control-') && name !== 'content-type') headers[name] = value;
  });
  if (response.status !== 204) headers['content-length'] = String(Buffer.byteLength(text));
  if (call.req.method === 'OPTIONS') headers['tus-checksum-algorithm'] = CHECKSUM_ALGORITHMS.join(',');
  res.writeHead(response.status, headers);
  res.end(text);
}
