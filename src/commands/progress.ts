// `stevedore push`'s one-line progress bar on a terminal. It shows percent and rate
// while the target reports the bytes it has read (PutItem.onProgress: the container
// targets' tar stream). Where a push cannot report them it shows the size and the time
// elapsed instead: the local target lands by hard link (or one copyFile), a large file
// goes by the runtime's own copy (`incus file push`, `docker cp`), and Incus/LXD send
// any file into a container without tar with `incus file push`.

const BAR_WIDTH = 20;
// Redraw at most this often for byte reports, and at least this often while none come.
const REDRAW_MS = 100;
const TICK_MS = 1000;

export interface ProgressState {
  total: number;
  /** Bytes read in this attempt; undefined while (or where) nothing is reported. */
  bytes: number | undefined;
  elapsedMs: number;
  attempt: number;
}

export interface Progress {
  /** An attempt starts: counting starts again from zero. */
  attempt(n: number): void;
  update(bytes: number): void;
  /** Clears the line. */
  done(): void;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export function progressLine({ total, bytes, elapsedMs, attempt }: ProgressState): string {
  const again = attempt > 1 ? ` (attempt ${attempt})` : '';
  if (bytes === undefined) return `pushing ${mb(total)} MB… ${(elapsedMs / 1000).toFixed(1)} s${again}`;
  const fraction = total > 0 ? Math.min(1, bytes / total) : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const rate = elapsedMs > 0 ? bytes / (elapsedMs / 1000) : 0;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `[${'#'.repeat(filled)}${' '.repeat(BAR_WIDTH - filled)}] ${percent} of ${mb(total)} MB, ${mb(rate)} MB/s${again}`;
}

/** Draws on `out`, which must be a terminal: the line is rewritten in place with \r. */
export function startProgress(out: NodeJS.WriteStream, total: number): Progress {
  let bytes: number | undefined;
  let attempt = 1;
  let startedAt = performance.now();
  let drawnAt = 0;
  const draw = () => {
    drawnAt = performance.now();
    const line = `stevedore: ${progressLine({ total, bytes, elapsedMs: drawnAt - startedAt, attempt })}`;
    // Never as wide as the terminal: a wrapped line is not cleared by \r.
    out.write(`\r${line.slice(0, Math.max(0, (out.columns || 80) - 1))}\x1b[K`);
  };
  const timer = setInterval(draw, TICK_MS).unref();
  return {
    attempt(n) {
      attempt = n;
      bytes = undefined;
      startedAt = performance.now();
      draw();
    },
    update(n) {
      // The first report switches from elapsed time to percent at once.
      const first = bytes === undefined;
      bytes = n;
      if (first || performance.now() - drawnAt >= REDRAW_MS) draw();
    },
    done() {
      clearInterval(timer);
      out.write('\r\x1b[K');
    },
  };
}
