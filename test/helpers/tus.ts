// tus from the client side: tus-js-client (the common client, in Node) wrapped in a
// promise that records each PATCH's offset, and raw requests for what the client
// library would not send (a wrong offset, a bad checksum).
import * as tus from 'tus-js-client';
import { send, type Answer } from './http.js';

export interface TusUpload {
  /** The final answer's Link header (</tasks/<id>>; rel="monitor"). */
  link: string;
  /** The upload's URL. */
  url: string;
  /** Upload-Offset of every PATCH sent, in order. */
  patchOffsets: number[];
}

export interface TusOptions {
  /** The tus endpoint: http://host:port/<route path>. */
  endpoint: string;
  data: Buffer;
  name: string;
  token?: string;
  chunkSize?: number;
  /** null: fail at the first error. */
  retryDelays?: number[] | null;
  /** Resume this upload instead of creating one. */
  uploadUrl?: string;
  /** Each PATCH answered: how many bytes the server has. */
  onChunk?(accepted: number, upload: tus.Upload): void;
  /** Bytes sent so far (acknowledged or not). */
  onProgress?(sent: number): void;
  /** Called with the Upload object once created, so the test can abort it. */
  started?(upload: tus.Upload): void;
}

export function tusUpload({ endpoint, data, name, token, chunkSize = Infinity, retryDelays = [0, 200, 500, 1000, 2000], uploadUrl, onChunk, onProgress, started }: TusOptions): Promise<TusUpload> {
  const patchOffsets: number[] = [];
  let link = '';
  return new Promise((resolve, reject) => {
    const upload: tus.Upload = new tus.Upload(data, {
      endpoint,
      ...(uploadUrl ? { uploadUrl } : {}),
      chunkSize,
      retryDelays,
      metadata: { filename: name },
      headers: token ? { authorization: `Bearer ${token}` } : {},
      onBeforeRequest: (req) => {
        if (req.getMethod() === 'PATCH') patchOffsets.push(Number(req.getHeader('Upload-Offset')));
      },
      onAfterResponse: (_req, res) => {
        link = res.getHeader('Link') ?? link;
      },
      onChunkComplete: (_size, accepted) => onChunk?.(accepted, upload),
      onProgress: (sent) => onProgress?.(sent),
      onError: reject,
      onSuccess: () => resolve({ link, url: upload.url ?? '', patchOffsets }),
    });
    started?.(upload);
    upload.start();
  });
}

/** The task id in a Link: </tasks/<id>>; rel="monitor" header. */
export const linkedTask = (link: string) => /^<\/tasks\/([A-Za-z0-9_-]{22})>; rel="monitor"$/.exec(link)?.[1];

const base64 = (text: string) => Buffer.from(text).toString('base64');

/** POST <route path> creating an upload of `length` bytes named `name`. */
export function createUpload(url: string, routePath: string, length: number, { name = 'file.bin', token, headers = {} }: { name?: string; token?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  return send(url, routePath, { method: 'POST', headers: { 'tus-resumable': '1.0.0', 'upload-length': String(length), 'upload-metadata': `filename ${base64(name)}`, ...auth, ...headers } });
}

/** PATCH `body` at `offset`. */
export function patchUpload(url: string, location: string, offset: number, body: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  return send(url, location, { method: 'PATCH', body, headers: { 'tus-resumable': '1.0.0', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream', ...headers } });
}

/** HEAD: the upload's offset as the server reports it (NaN without one). */
export async function headUpload(url: string, location: string, headers: Record<string, string> = {}): Promise<{ status: number; offset: number; answer: Answer }> {
  const answer = await send(url, location, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0', ...headers } });
  return { status: answer.status, offset: Number(answer.headers['upload-offset'] ?? NaN), answer };
}
