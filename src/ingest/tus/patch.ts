// PATCH /uploads/<id>, served here rather than by @tus/server: the library hands a
// body to its store through web streams (node → web → node), which cost ~10% of the
// throughput of 8 MiB PATCHes (bench/resumable, docs/resumable.md). The rest of the
// protocol stays the library's; this takes the same lock as its HEAD and DELETE, and
// answers as tus 1.0 says: 409 at a wrong offset, 410 once expired, 204 with the new
// Upload-Offset once the bytes are fsynced (and the task journaled, for the last ones).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { Locker } from '@tus/server';
import { StevedoreError } from '../../errors.js';
import { declaredLength } from '../upload.js';
import { runCall, type TusCall } from './call.js';
import { fromLibrary } from './errors.js';
import type { UploadStore } from './store.js';

export async function servePatch(call: TusCall, store: UploadStore, locker: Locker, res: ServerResponse): Promise<void> {
  const { req, id } = call;
  const offset = Number(req.headers['upload-offset']);
  const lock = locker.newLock(id);
  const body = bodyOf(req);
  // Another request for this upload (the client's retry after it gave this one up): this body ends where it is.
  await lock.lock(new AbortController().signal, () => body.stop()).catch((error: unknown) => {
    throw fromLibrary(error); // its lock timeout
  });
  let reached: number;
  try {
    const upload = await store.getUpload(id);
    if (Date.now() > Date.parse(upload.creation_date ?? '') + store.getExpiration()) {
      throw new StevedoreError('UPLOAD_EXPIRED', `upload ${id} expired: it received nothing for http.upload_expiry`);
    }
    if (upload.offset !== offset) throw new StevedoreError('UPLOAD_OFFSET_CONFLICT', `Upload-Offset is ${offset}, but the upload has ${upload.offset} bytes (HEAD tells)`);
    const size = upload.size ?? 0;
    if (offset + (declaredLength(req, call.ctx.maxBody) ?? 0) > size) throw pastLength(size, offset);
    reached = await runCall(call, () => store.write(body.limit(size, offset), id, offset));
  } finally {
    await lock.unlock();
  }
  const task = store.taskOf(id);
  const headers: Record<string, string> = { 'upload-offset': String(reached) };
  if (task) headers.link = `</tasks/${task}>; rel="monitor"`;
  else headers['upload-expires'] = new Date(Date.now() + store.getExpiration()).toUTCString();
  res.writeHead(204, headers);
  res.end();
}

interface PatchBody {
  /** The request's body written at `offset`, up to Upload-Length `size` (413 past it); a client gone ends it like its end. */
  limit(size: number, offset: number): Transform;
  /** Ends the body where it is. */
  stop(): void;
}

// A body cut by its client ends cleanly, as the library's do: the bytes that came are
// kept, and the client goes on from them.
function bodyOf(req: IncomingMessage): PatchBody {
  let output: Transform | undefined;
  let stopped = false;
  const stop = () => {
    stopped = true;
    if (!output) return;
    req.unpipe(output);
    output.end();
  };
  return {
    limit(size, offset) {
      let bytes = 0;
      output = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          callback(offset + bytes > size ? pastLength(size, offset) : null, chunk);
        },
      });
      // The first chunks pass through before writeAt() reads: one past the length would
      // fail this stream with nobody listening yet, and that 'error' ended the process.
      // The reader still gets the failure from the stream's state.
      output.on('error', () => undefined);
      req.once('close', () => req.complete || stop()).once('error', stop);
      if (stopped || req.destroyed) output.end();
      else req.pipe(output);
      return output;
    },
    stop,
  };
}

// Past Upload-Length, not max_body: said so, with what is left to send.
const pastLength = (size: number, offset: number) =>
  new StevedoreError('TOO_LARGE', `the body goes past Upload-Length (${size} bytes): ${size - offset} bytes are left after Upload-Offset ${offset}`, { details: { maxBytes: size - offset } });
