// The checksums a client may send with a body: RFC 9530 `Content-Digest: sha-256=:B64:`
// and `X-Checksum-Sha256: HEX`. Every one present is checked, none is skipped: both
// headers together, and every sha-256 member of Content-Digest (a repeated field is
// one list). Each becomes lowercase hex to compare with what we hashed.
import type { IncomingMessage } from 'node:http';
import { StevedoreError } from '../errors.js';
import { singleHeader } from './headers.js';

export interface ExpectedDigest {
  header: string;
  hex: string;
}

export function expectedDigests(req: IncomingMessage): ExpectedDigest[] {
  const digests: ExpectedDigest[] = [];
  const plain = singleHeader(req, 'x-checksum-sha256')?.trim();
  if (plain !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(plain)) throw malformed('X-Checksum-Sha256', 'expected 64 hex digits');
    digests.push({ header: 'X-Checksum-Sha256', hex: plain.toLowerCase() });
  }
  const content = req.headersDistinct['content-digest'];
  if (content !== undefined) digests.push(...contentDigests(content.join(',')));
  return digests;
}

// RFC 9530 §2: a Dictionary of algorithm = :base64:. We compute sha-256 only, so a
// field without it cannot be checked and is refused rather than ignored.
function contentDigests(field: string): ExpectedDigest[] {
  const members = field.split(',').map((member) => member.trim()).filter(Boolean);
  const sha256 = members.filter((member) => /^sha-256\s*=/i.test(member));
  if (sha256.length === 0) {
    const algorithms = members.map((member) => member.split('=')[0]?.trim()).join(', ');
    throw malformed('Content-Digest', `only sha-256 is verified here, and the field has none (${algorithms.slice(0, 100) || 'empty'})`);
  }
  return sha256.map((member) => {
    const match = /^sha-256\s*=\s*:([A-Za-z0-9+/]+={0,2}):\s*(?:;.*)?$/i.exec(member);
    if (!match) throw malformed('Content-Digest', 'expected sha-256=:BASE64:');
    const bytes = Buffer.from(match[1] ?? '', 'base64');
    if (bytes.length !== 32) throw malformed('Content-Digest', 'a sha-256 digest is 32 bytes');
    return { header: 'Content-Digest', hex: bytes.toString('hex') };
  });
}

/** 422 CHECKSUM_MISMATCH naming the first expected digest that `sha256` does not match. */
export function mismatch(expected: readonly ExpectedDigest[], sha256: string, what = 'the body'): StevedoreError | undefined {
  const wrong = expected.find((digest) => digest.hex !== sha256);
  if (!wrong) return undefined;
  return new StevedoreError('CHECKSUM_MISMATCH', `${wrong.header} does not match ${what} (sha-256 ${sha256})`);
}

const malformed = (header: string, why: string) => new StevedoreError('BAD_REQUEST', `${header} is malformed: ${why}`);
