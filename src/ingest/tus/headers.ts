// The tus request headers we check ourselves, before @tus/server sees the request, so
// that a bad one is refused with our codes (SPEC §3's JSON) and before anything is
// admitted or written: the protocol version, the upload's length and name, a PATCH's
// offset and media type.
import type { IncomingMessage } from 'node:http';
import { Metadata } from '@tus/utils';
import { StevedoreError } from '../../errors.js';
import { tooLarge } from '../../spool/receive.js';
import { singleHeader } from '../headers.js';
import { checkRelativePath } from '../paths.js';

export function checkTusVersion(req: IncomingMessage): void {
  const version = singleHeader(req, 'tus-resumable');
  if (version === '1.0.0') return;
  throw new StevedoreError('TUS_VERSION_UNSUPPORTED', `Tus-Resumable: 1.0.0 is required (got ${version === undefined ? 'none' : JSON.stringify(version.slice(0, 40))})`);
}

/** Upload-Length of a creation, at most max_body. */
export function uploadLength(req: IncomingMessage, maxBody: number): number {
  if (req.headers['upload-concat'] !== undefined) throw new StevedoreError('BAD_REQUEST', 'Upload-Concat: the concatenation extension is not supported (upload in one piece)');
  const length = singleHeader(req, 'upload-length');
  if (length === undefined) {
    const deferred = req.headers['upload-defer-length'] !== undefined;
    throw new StevedoreError('BAD_REQUEST', deferred ? 'Upload-Defer-Length is not supported: Upload-Length is needed to check max_body, capacity and min_free before any byte' : 'Upload-Length is required');
  }
  if (!/^\d{1,16}$/.test(length) || !Number.isSafeInteger(Number(length))) throw new StevedoreError('BAD_REQUEST', `Upload-Length "${length.slice(0, 40)}" is not a number of bytes`);
  if (Number(length) > maxBody) throw tooLarge(maxBody);
  return Number(length);
}

/**
 * The relative path the upload lands at: Upload-Metadata's `relativePath` (as Uppy
 * sends it for a file in a dropped folder, with one leading "/" allowed), else its
 * `filename`. Checked like a URL path (paths.ts): 400 BAD_PATH.
 */
export function uploadName(req: IncomingMessage): string {
  const header = singleHeader(req, 'upload-metadata');
  let metadata: Record<string, string | null> = {};
  try {
    if (header !== undefined && header.trim() !== '') metadata = Metadata.parse(header);
  } catch {
    throw new StevedoreError('BAD_REQUEST', 'Upload-Metadata is malformed: expected comma-separated "key base64value" pairs with unique keys');
  }
  const relative = metadata.relativePath?.replace(/^\//, '');
  const name = relative || metadata.filename;
  if (!name) throw new StevedoreError('BAD_PATH', 'Upload-Metadata must name the file: "filename <base64 relative path>" (or relativePath)');
  return checkRelativePath(name);
}

/** A PATCH's Upload-Offset (400 when missing) and Content-Type (415 unless tus's). */
export function checkPatch(req: IncomingMessage): void {
  const offset = singleHeader(req, 'upload-offset');
  if (offset === undefined || !/^\d{1,16}$/.test(offset)) throw new StevedoreError('BAD_REQUEST', 'Upload-Offset is required: the number of bytes the upload has, from HEAD');
  checkMediaType(req);
}

/** A body sent with tus must be application/offset+octet-stream. */
export function checkMediaType(req: IncomingMessage): void {
  const type = singleHeader(req, 'content-type');
  if (type?.split(';')[0]?.trim().toLowerCase() === 'application/offset+octet-stream') return;
  throw new StevedoreError('UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/offset+octet-stream (got ${type === undefined ? 'none' : JSON.stringify(type.slice(0, 60))})`);
}
