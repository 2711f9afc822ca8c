// tus's checksum extension: `Upload-Checksum: <algorithm> <base64 digest>` covers the
// bytes of the one request it comes with. A body that does not match is discarded and
// answered 460; a body cut short cannot be checked and is discarded too.
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { StevedoreError } from '../../errors.js';
import { singleHeader } from '../headers.js';

/** What Tus-Checksum-Algorithm advertises: sha1 because tus requires it, sha256 as the issue asks. */
export const CHECKSUM_ALGORITHMS = ['sha1', 'sha256'] as const;
type Algorithm = (typeof CHECKSUM_ALGORITHMS)[number];

const DIGEST_BYTES: Record<Algorithm, number> = { sha1: 20, sha256: 32 };

export interface ExpectedChecksum {
  algorithm: Algorithm;
  digest: Buffer;
}

/** The request's Upload-Checksum, or undefined; 400 when it is malformed or names another algorithm. */
export function uploadChecksum(req: IncomingMessage): ExpectedChecksum | undefined {
  const header = singleHeader(req, 'upload-checksum');
  if (header === undefined) return undefined;
  const match = /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/i.exec(header.trim());
  const algorithm = match?.[1]?.toLowerCase();
  if (!match || !algorithm) throw new StevedoreError('BAD_REQUEST', 'Upload-Checksum is malformed: expected "<algorithm> <base64 digest>"');
  if (!isAlgorithm(algorithm)) {
    throw new StevedoreError('BAD_REQUEST', `Upload-Checksum: ${algorithm.slice(0, 40)} is not supported (Tus-Checksum-Algorithm: ${CHECKSUM_ALGORITHMS.join(',')})`);
  }
  const digest = Buffer.from(match[2] ?? '', 'base64');
  if (digest.length !== DIGEST_BYTES[algorithm]) throw new StevedoreError('BAD_REQUEST', `Upload-Checksum: a ${algorithm} digest is ${DIGEST_BYTES[algorithm]} bytes`);
  return { algorithm, digest };
}

const isAlgorithm = (name: string): name is Algorithm => (CHECKSUM_ALGORITHMS as readonly string[]).includes(name);

export const checksumHash = (expected: ExpectedChecksum): Hash => createHash(expected.algorithm);

/** 460 when the body's digest is not the one announced. */
export function checkDigest(expected: ExpectedChecksum, hash: Hash): void {
  const got = hash.digest();
  if (got.equals(expected.digest)) return;
  throw new StevedoreError('UPLOAD_CHECKSUM_MISMATCH', `Upload-Checksum ${expected.algorithm} does not match the body (${got.toString('base64')}): its bytes were discarded, send them again`);
}
