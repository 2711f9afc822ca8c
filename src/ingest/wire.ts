// The HTTP/1.1 edges node:http either lets through or answers itself with an empty
// body: here each is refused in SPEC §3's JSON shape. A transfer coding other than
// chunked (node would hand over the still-compressed bytes), header fields past what
// node keeps (it would drop the rest, a checksum among them), a repeated Host, an
// Expect the agent cannot meet, CONNECT, and the requests node's parser refuses.
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { StevedoreError, type ErrorCode } from '../errors.js';
import { singleHeader } from './headers.js';
import { sendError } from './respond.js';

/** More header fields than this is 431: node itself keeps 1000 and silently drops the rest. */
export const MAX_HEADER_FIELDS = 1000;

/** Makes `server` answer every refusal of its own in JSON, and count header fields itself. */
export function guardWire(server: Server): void {
  // Unlimited here, so that none is dropped unseen; the 16 KiB head bounds the count.
  server.maxHeadersCount = 0;
  server.on('clientError', answerClientError);
  server.on('connect', answerConnect);
  // Without a listener node answers 417 itself, with an empty body.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const expect = String(req.headers.expect).slice(0, 100);
    sendError(req, res, new StevedoreError('EXPECTATION_FAILED', `Expect: ${expect} is not supported (only 100-continue)`));
  });
}

/** Refuses a parsed head that the agent must not act on. Runs before routing. */
export function checkHead(req: IncomingMessage): void {
  const fields = req.rawHeaders.length / 2;
  if (fields > MAX_HEADER_FIELDS) throw new StevedoreError('HEADERS_TOO_LARGE', `the request has ${fields} header fields, more than ${MAX_HEADER_FIELDS}`);
  const host = singleHeader(req, 'host');
  if (host === undefined && req.httpVersion !== '1.0') throw new StevedoreError('BAD_REQUEST', 'an HTTP/1.1 request needs a Host header');
  // node keeps the first of two; a proxy in front may have checked the other one.
  singleHeader(req, 'authorization');
  const codings = req.headersDistinct['transfer-encoding'];
  if (codings !== undefined && !(codings.length === 1 && /^\s*chunked\s*$/i.test(codings[0] ?? ''))) {
    throw new StevedoreError('UNSUPPORTED_TRANSFER_CODING', `Transfer-Encoding: ${codings.join(', ').slice(0, 100)} is not supported (only chunked; compress the file before, not on the wire)`);
  }
}

// node's parser refuses a malformed request before any handler sees it, and answers
// with an empty body; here the answer has SPEC §3's JSON shape like every other one.
const PARSER_ERRORS: Record<string, [ErrorCode, string]> = {
  HPE_HEADER_OVERFLOW: ['HEADERS_TOO_LARGE', 'the request head is too large'],
  ERR_HTTP_REQUEST_TIMEOUT: ['REQUEST_TIMEOUT', 'the request head did not arrive in time'],
};

function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [code, message] = PARSER_ERRORS[error.code ?? ''] ?? ['BAD_REQUEST', `malformed request (${error.code ?? error.message})`];
  writeError(socket, new StevedoreError(code, message));
}

// CONNECT asks for a tunnel, which an upload endpoint does not make; without a
// listener node would close the connection without a word.
function answerConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => undefined);
  writeError(socket, new StevedoreError('METHOD_NOT_ALLOWED', 'CONNECT is not supported: this is no proxy'), { allow: 'GET, HEAD, PUT, POST, DELETE' });
}

function writeError(socket: Duplex, { status, code, message }: StevedoreError, headers: Record<string, string> = {}): void {
  const body = `${JSON.stringify({ error: { code, message } })}\n`;
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`);
}
