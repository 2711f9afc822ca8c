// POST <route path>/<dir> with multipart/form-data: one task per file part, landing at
// <dest>/<dir>/<part filename>. All or nothing: if any part is refused, every part
// staged so far is removed and nothing is queued.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { StevedoreError, errorMessage } from '../errors.js';
import { tooLarge } from '../spool/receive.js';
import { expectedDigests, mismatch } from './checksum.js';
import type { HttpContext, Route } from './types.js';
import type { Accepted } from './intake.js';
import { checkRelativePath, joinDest } from './paths.js';
import type { Body } from './receiving.js';
import { continueBody } from './respond.js';
import { answerTasks, declaredLength, fromRequest, requireToken } from './upload.js';

export const MAX_PARTS = 1000;

export async function handleMultipart(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, route: Route, dir: string): Promise<void> {
  requireToken(route.token, req);
  // Not honoured here yet: refused rather than ignored, so a retry cannot queue the files twice unawares.
  if (req.headers['idempotency-key'] !== undefined) {
    throw new StevedoreError('BAD_REQUEST', 'Idempotency-Key is not supported on multipart uploads: send each file as its own PUT to use one');
  }
  const length = declaredLength(req, ctx.maxBody);
  const digests = expectedDigests(req);
  const accepted: Accepted[] = [];
  const where = { route: route.name, target: route.target, dest: dir === '' ? route.dest : joinDest(route.dest, dir) };
  const body = ctx.bodies.enter({ ...where, anonymous: route.token === undefined, ...(length === undefined ? {} : { expected: length }) });
  let admitted = 0;
  let parts = 0;
  try {
    // Room for the first part is taken before the body is read (SPEC §3); each further
    // part takes its own as it comes.
    await ctx.intake.admit(1);
    admitted = 1;
    continueBody(req, res);
    const bodySha = await parseParts(ctx, req, body, async (filename, stream) => {
      const rel = checkRelativePath(filename);
      parts += 1;
      if (parts > 1) {
        await ctx.intake.admit(1);
        admitted += 1;
      }
      const received = await ctx.intake.receive(stream, { maxBytes: ctx.maxBody });
      const dest = joinDest(route.dest, dir === '' ? rel : `${dir}/${rel}`);
      accepted.push({ received, source: 'http', route: route.name, target: route.target, dest, options: route.options, ...fromRequest(ctx) });
    });
    body.leave();
    const wrong = mismatch(digests, bodySha, 'the request body');
    if (wrong) throw wrong;
    if (accepted.length === 0) throw new StevedoreError('BAD_REQUEST', 'the multipart body has no file part');
    const tasks = await ctx.intake.commit(accepted);
    admitted = 0;
    await answerTasks(ctx, req, res, tasks, true);
  } finally {
    body.leave();
    if (admitted > 0) {
      ctx.intake.release(admitted);
      await Promise.all(accepted.map((a) => a.received && ctx.intake.discard(a.received)));
    }
  }
}

type OnFile = (filename: string, stream: Readable) => Promise<void>;

// Feeds the body through busboy, handling one file part at a time, and resolves
// with the SHA-256 of the whole body once every part is staged. It settles only once
// every part handed to onFile is done with, so that the caller's cleanup sees each
// staged file and no part is staged after that cleanup ran.
function parseParts(ctx: HttpContext, req: IncomingMessage, body: Body, onFile: OnFile): Promise<string> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      // defParamCharset: browsers, curl and fetch's FormData send filename="…" as raw
      // UTF-8; busboy's default (latin1) would land "café.txt" as "cafÃ©.txt".
      parser = busboy({ headers: req.headers, preservePath: true, defParamCharset: 'utf8', limits: { files: MAX_PARTS, parts: MAX_PARTS + 100, fieldSize: 65_536, headerPairs: 100 } });
    } catch (error) {
      reject(new StevedoreError('BAD_REQUEST', `malformed multipart request: ${errorMessage(error)}`));
      return;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    let chain = Promise.resolve();
    let failure: { error: unknown } | undefined;
    const settle = () => void chain.then(() => (failure ? reject(failure.error) : resolve(hash.digest('hex'))));
    const fail = (error: unknown) => {
      if (failure) return;
      failure = { error };
      req.unpipe(parser);
      // Stops the parse and fails the part being received: receive() removes its file.
      parser.destroy();
      settle();
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      if (bytes > ctx.maxBody) fail(tooLarge(ctx.maxBody));
    };
    req.on('data', onData);
    req.once('close', () => {
      if (!req.readableEnded) fail(new StevedoreError('CLIENT_ABORTED', 'the client went away mid-body'));
    });
    parser.on('file', (_field, stream, info) => {
      // A part destroyed by fail() before its turn errors with nobody listening.
      stream.on('error', () => undefined);
      const { filename } = info;
      if (!filename) return void stream.resume();
      chain = chain
        .then(() => (failure ? void stream.resume() : onFile(filename, stream)))
        .catch((error: unknown) => {
          stream.resume();
          fail(error);
        });
    });
    parser.on('filesLimit', () => fail(new StevedoreError('TOO_LARGE', `more than ${MAX_PARTS} files in one request`)));
    parser.on('partsLimit', () => fail(new StevedoreError('TOO_LARGE', `more than ${MAX_PARTS + 100} parts in one request`)));
    parser.on('error', (error) => fail(new StevedoreError('BAD_REQUEST', `malformed multipart body: ${errorMessage(error)}`)));
    parser.on('close', settle);
    // A body slower than http.min_rate fails like any other part of it.
    body.signal.addEventListener('abort', () => fail(body.signal.reason), { once: true });
    req.pipe(parser);
    body.read(req);
  });
}
