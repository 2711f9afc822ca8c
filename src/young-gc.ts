// A large body or file passes through JavaScript in fresh Buffers of up to 64 KiB (the
// HTTP parser copies each piece of a body into a new one; a file read stream allocates
// one per read). Once dead they cost nothing but memory, and V8 collects them only when
// the young generation's buffers reach 32 MB, whatever the flags
// (Heap::AllocateExternalBackingStore): every streaming upload held ~35 MB of dead
// chunks (bench/ingest: peak RSS 107–111 MB for a 1 GiB upload). A minor GC every 8 MiB
// that streamed keeps that to a few MB, for ~0.1–0.5 ms each.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const STEP = 8 * 2 ** 20;

type MinorGc = (options: { type: 'minor' }) => void;

// The gc function, without --expose-gc on the command line: a context created while the
// flag is set gets one (Node 20, 22 and 24 checked). The flag goes off again at once, so
// no other context gets it. A Node that refused flags after start would leave V8's own
// threshold in charge: more memory, nothing lost.
function minorGc(): MinorGc | undefined {
  if (typeof globalThis.gc === 'function') return globalThis.gc as MinorGc; // started with --expose-gc
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    setFlagsFromString('--no-expose-gc');
    return typeof gc === 'function' ? (gc as MinorGc) : undefined;
  } catch {
    return undefined;
  }
}

const gc = minorGc();
let sinceLast = 0;

/** Counts `bytes` that streamed through fresh Buffers now dead or soon to be. */
export function streamed(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < STEP) return;
  sinceLast = 0;
  gc?.({ type: 'minor' });
}
