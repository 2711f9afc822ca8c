// The race harness: a writer process (racer.py) swapping names in a watched folder as
// fast as the kernel allows, while the agent works on the same paths.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

const RACER = fileURLToPath(new URL('./racer.py', import.meta.url));

/**
 * Swaps `a` and `b` for `seconds`: `exchange` atomically (renameat2 RENAME_EXCHANGE),
 * `flip` as two renames. Resolves with the number of renames made; the names end as
 * they started. `pauseUs` between swaps leaves the agent time to work during the race.
 */
export function race(mode: 'exchange' | 'flip', a: string, b: string, seconds: number, pauseUs = 0): Promise<number> {
  const child = spawn('python3', [RACER, mode, a, b, String(seconds), String(pauseUs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`racer.py exited ${code}: ${err}`))));
  });
}
