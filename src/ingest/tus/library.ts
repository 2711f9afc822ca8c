// @tus/server over our store, loaded by the first tus request (endpoint.ts): the protocol
// but PATCH (patch.ts) is the library's, and its answer is written here.
import type { ServerResponse } from 'node:http';
import { MemoryLocker, Server, type Locker } from '@tus/server';
import { NodeRequest } from 'srvx/node';
import { currentCall, runCall, type TusCall } from './call.js';
import { CHECKSUM_ALGORITHMS } from './checksum.js';
import { fromAnswer, fromLibrary } from './errors.js';
import type { UploadStore } from './store.js';

export interface TusLibrary {
  /** The lock the library's HEAD and DELETE take, which our PATCH takes too. */
  locker: Locker;
  serve(call: TusCall, res: ServerResponse): Promise<void>;
}

export function createLibrary(store: UploadStore): TusLibrary {
  const locker = new MemoryLocker();
  const server = createServer(store, locker);
  return { locker, serve: (call, res) => serve(server, call, res) };
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
