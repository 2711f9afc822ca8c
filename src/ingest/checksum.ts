// The checksum a client may send with a body: RFC 9530 `Content-Digest: sha-256=:B64:`
// or `X-Checksum-Sha256: HEX`. Both become lowercase hex to compare with what we hashed.
import type { IncomingHttpHeaders } from 'node:http';
import { StevedoreError } from '../errors.js';
import { singleHeader } from './headers.js';

export interface ExpectedDigest {
  header: string;
  hex: string;
}

export function expectedDigest(headers: IncomingHttpHeaders): ExpectedDigest | undefined {
  const plain = singleHeader(headers, 'x-checksum-sha256');
  if (plain !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(plain.trim())) throw malformed('X-Checksum-Sha256', 'expected 64 hex digits');
    return { header: 'X-Checksum-Sha256', hex: plain.trim().toLowerCase() };
  }
  const digest = singleHeader(headers, 'content-digest');
  if (digest === undefined) return undefined;
  const match = /(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/]+={0,2}):\s*(?:,|;|$)/i.exec(digest);
  if (!match) {
    // Other algorithms are allowed by RFC 9530; we only verify sha-256.
    if (/sha-256/i.test(digest)) throw malformed('Content-Digest', 'expected sha-256=:BASE64:');
    return undefined;
  }
  const bytes = Buffer.from(match[1] ?? '', 'base64');
  if (bytes.length !== 32) throw malformed('Content-Digest', 'a sha-256 digest is 32 bytes');
  return { header: 'Content-Digest', hex: bytes.toString('hex') };
}

/** CHECKSUM_MISMATCH when the client said another digest than the body's `sha256`. */
export const digestMismatch = (expected: ExpectedDigest | undefined, sha256: string): StevedoreError | undefined =>
  expected && expected.hex !== sha256 ? new StevedoreError('CHECKSUM_MISMATCH', `${expected.header} does not match the body (sha-256 ${sha256})`) : undefined;

const malformed = (header: string, why: string) => new StevedoreError('BAD_REQUEST', `${header} is malformed: ${why}`);
