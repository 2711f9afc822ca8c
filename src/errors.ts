// Every failure stevedore can report has a stable code here, with its HTTP status
// where it has one. Callers throw `new StevedoreError(code, message, {cause, ...})`.

export const errorStatus = {
  // HTTP ingest (SPEC §3)
  BAD_PATH: 400,
  BAD_REQUEST: 400,
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  // A browser page of another site (SPEC §9): its Origin is not the listener's, nor listed.
  FORBIDDEN_ORIGIN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  IDEMPOTENCY_CONFLICT: 409,
  TOO_LARGE: 413,
  EXPECTATION_FAILED: 417,
  // The Host header names a host this listener does not answer for (DNS rebinding).
  UNKNOWN_HOST: 421,
  CHECKSUM_MISMATCH: 422,
  // Resumable uploads (tus 1.0, SPEC §8)
  UPLOAD_OFFSET_CONFLICT: 409,
  UPLOAD_EXPIRED: 410,
  TUS_VERSION_UNSUPPORTED: 412,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UPLOAD_CHECKSUM_MISMATCH: 460,
  IDEMPOTENCY_KEY_REUSED: 422,
  UNSUPPORTED_TRANSFER_CODING: 501,
  PUSH_FAILED: 502,
  QUEUE_FULL: 503,
  SHUTTING_DOWN: 503,
  // http.max_receiving bodies are being received (or a token-less route's share of them).
  TOO_MANY_UPLOADS: 503,
  // GET /events has as many listeners as it takes.
  TOO_MANY_STREAMS: 503,
  TOO_MANY_OPEN_FILES: 503,
  // state_dir is gone or cannot be written (spool/state-dir.ts): uploads wait for it.
  SPOOL_UNAVAILABLE: 503,
  INSUFFICIENT_STORAGE: 507,
  CLIENT_ABORTED: 499,
  INTERNAL: 500,
  // Config and start-up
  CONFIG_INVALID: undefined,
  CONFIG_UNREADABLE: undefined,
  NOT_SUPPORTED: undefined,
  AGENT_UNREACHABLE: undefined,
  // http.listen could not be bound (in use, a name that does not resolve, no such address here).
  LISTEN_FAILED: undefined,
  // A command line the CLI cannot act on (exit 2)
  USAGE: undefined,
  // Spool and journal
  JOURNAL_CORRUPT: undefined,
  STAGED_MISSING: undefined,
  STAGED_CORRUPT: undefined,
  // A watched file that cannot be read without leaving its folder (a symlink out of it,
  // or one where the watch follows none), or that is not a regular file.
  SOURCE_UNSAFE: undefined,
  // Pushing into a target
  DEST_UNSAFE: undefined,
  DEST_IS_DIR: undefined,
  // The destination is too long where it would land (PATH_MAX, or a filesystem's NAME_MAX): not retried.
  DEST_TOO_LONG: undefined,
  PERMISSION_DENIED: undefined,
  TARGET_IO: undefined,
  // The target's filesystem is out of space or quota: retried, since space can come back.
  TARGET_FULL: undefined,
  TARGET_DOWN: undefined,
  TARGET_UNKNOWN: undefined,
  TARGET_NOT_FOUND: undefined,
  CONTAINER_UNSUPPORTED: undefined,
  RUNTIME_MISSING: undefined,
  PUSH_TIMEOUT: undefined,
  EXEC_FAILED: undefined,
} as const satisfies Record<string, number | undefined>;

export type ErrorCode = keyof typeof errorStatus;

export interface StevedoreErrorOptions {
  cause?: unknown;
  /** Structured context for logs and JSON bodies (task id, target, dest, limits). */
  details?: Record<string, unknown>;
}

export class StevedoreError extends Error {
  override name = 'StevedoreError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: StevedoreErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  get status(): number {
    return errorStatus[this.code] ?? 500;
  }
}

export const isStevedoreError = (error: unknown, code?: ErrorCode): error is StevedoreError =>
  error instanceof StevedoreError && (code === undefined || error.code === code);

// Node's system errors carry a string `code` (ENOENT, EACCES…); this reads it safely.
export const errnoCode = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;

export const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
