// @tus/server answers its own failures with a status and a line of text, and passes
// ours through: each becomes a StevedoreError, so that a tus answer has SPEC §3's JSON
// shape like every other.
import { StevedoreError, isStevedoreError, type ErrorCode } from '../../errors.js';
import { spoolError } from '../../spool/receive.js';

const BY_STATUS: Partial<Record<number, ErrorCode>> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  409: 'UPLOAD_OFFSET_CONFLICT',
  410: 'UPLOAD_EXPIRED',
  412: 'TUS_VERSION_UNSUPPORTED',
  413: 'TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  460: 'UPLOAD_CHECKSUM_MISMATCH',
};

/** A failure the library answers with (one of its ERRORS, or anything thrown inside it). */
export function fromLibrary(error: unknown): StevedoreError {
  if (isStevedoreError(error)) return error;
  if (isTusError(error)) return fromAnswer(error.status_code, error.body);
  const known = spoolError(error); // a full disk, no descriptor left
  return isStevedoreError(known) ? known : new StevedoreError('INTERNAL', 'internal error', { cause: error });
}

/** An answer the library wrote itself: its status and text. */
export function fromAnswer(status: number, text: string): StevedoreError {
  const code = BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST');
  return new StevedoreError(code, text.trim() || `tus answered ${status}`);
}

const isTusError = (error: unknown): error is { status_code: number; body: string } =>
  typeof error === 'object' && error !== null && 'status_code' in error && typeof error.status_code === 'number' && 'body' in error && typeof error.body === 'string';
