// tus 1.0 on every route (SPEC §8): OPTIONS and POST at the route's own path, HEAD,
// PATCH and DELETE at /uploads/<id>. Our checks come first, with our codes: the route's
// token, the tus version, the upload's length (max_body) and name (BAD_PATH), capacity
// and min_free, and a body's place among those being received; then @tus/server runs
// the protocol over our store (library.ts, loaded by the first tus request).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StevedoreError } from '../../errors.js';
import { TASK_ID_PATTERN } from '../../task.js';
import { randomName } from '../../random.js';
import { joinDest } from '../paths.js';
import { continueBody, notAllowed } from '../respond.js';
import type { TusEndpoint } from '../types.js';
import { declaredLength, requireToken } from '../upload.js';
import type { Creation, TusCall } from './call.js';
import { uploadChecksum } from './checksum.js';
import { checkMediaType, checkPatch, checkTusVersion, uploadLength, uploadName } from './headers.js';
import type { TusLibrary } from './library.js';
import { servePatch } from './patch.js';
import type { UploadStore } from './store.js';

/** True for a request at a route's own path that is tus's, not a raw or multipart upload. */
export const isTusAtRoute = (req: IncomingMessage, rel: string): boolean =>
  rel === '' && (req.method === 'OPTIONS' || (req.method === 'POST' && req.headers['tus-resumable'] !== undefined));

const UPLOAD_METHODS = ['HEAD', 'PATCH', 'DELETE', 'OPTIONS'];

export function createTusEndpoint(store: UploadStore): TusEndpoint {
  // @tus/server and srvx keep ~5 MB resident (most of it the web Request and Response
  // they bring up): they are loaded by the first tus request, not by every agent.
  let loading: Promise<TusLibrary> | undefined;
  const library = () => (loading ??= import('./library.js').then(({ createLibrary }) => createLibrary(store)));
  const serve = async (call: TusCall, res: ServerResponse) => (await library()).serve(call, res);
  return {
    async atRoute(ctx, req, res, route) {
      requireToken(route.token, req);
      const call: TusCall = { ctx, req, id: randomName(16) };
      if (req.method === 'OPTIONS') return serve(call, res);
      checkTusVersion(req);
      const length = uploadLength(req, ctx.maxBody);
      const dest = joinDest(route.dest, uploadName(req));
      call.creation = { route: route.name, target: route.target, dest, options: route.options, anonymous: route.token === undefined };
      call.checksum = uploadChecksum(req);
      store.checkRoom(call.creation.anonymous, ctx.receiving.capacity);
      // Capacity and min_free for the whole upload, before any byte; the queue slot is
      // taken again when the last byte is in (an upload may pause for hours).
      const check = await ctx.intake.admit(1, length);
      check.done();
      ctx.intake.release(1);
      if (!hasBody(req)) return serve(call, res);
      checkMediaType(req);
      // creation-with-upload: the client learns the upload's id from this answer only.
      // When it fails or the body was cut, nobody can resume or end that upload: it is
      // removed now instead of keeping its bytes until it expires.
      const orphan = () => (store.record(call.id) && store.taskOf(call.id) === undefined ? store.remove(call.id) : undefined);
      await serveBody(call, call.creation, declaredLength(req, ctx.maxBody) ?? length, () => serve(call, res), res).catch(async (error: unknown) => {
        await orphan();
        throw error;
      });
      if (!req.complete) await orphan();
    },
    async atUpload(ctx, req, res, id) {
      const record = TASK_ID_PATTERN.test(id) ? store.record(id) : undefined;
      if (!record) throw new StevedoreError('NOT_FOUND', `no upload ${id.slice(0, 64)} (finished, terminated and expired uploads are removed)`);
      const route = ctx.routes.find((r) => r.name === record.route);
      if (!route) throw new StevedoreError('NOT_FOUND', `upload ${id}: its route ${record.route} is no longer configured`);
      requireToken(route.token, req);
      if (!UPLOAD_METHODS.includes(req.method ?? '')) throw notAllowed(UPLOAD_METHODS);
      const call: TusCall = { ctx, req, id };
      if (req.method === 'OPTIONS') return serve(call, res);
      checkTusVersion(req);
      if (req.method !== 'PATCH') return serve(call, res);
      checkPatch(req);
      call.checksum = uploadChecksum(req);
      return serveBody(call, record, declaredLength(req, ctx.maxBody) ?? record.size, async () => servePatch(call, store, (await library()).locker, res), res);
    },
  };
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
