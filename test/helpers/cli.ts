// The CLI as users run it: compiled by tsc (tsconfig.build.json) and spawned with node.
// It is built into a private temp dir, not ./dist, so concurrent builds and edits by
// others cannot race with it; package.json and node_modules sit next to it as in a checkout.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, onTestFinished } from 'vitest';

export const root = fileURLToPath(new URL('../..', import.meta.url));

let buildDir = '';
let cliJs = '';

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Builds the CLI before the calling file's tests and removes it after them. */
export function useBuiltCli(): void {
  beforeAll(async () => {
    buildDir = await mkdtemp(path.join(tmpdir(), 'stevedore-cli-build-'));
    await chmod(buildDir, 0o755); // a test may run it as another user (setpriv)
    const outDir = path.join(buildDir, 'dist');
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const build = await finished(
      spawn(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', outDir, '--declaration', 'false', '--sourceMap', 'false'], { cwd: root, stdio: 'pipe' }),
      60_000,
    );
    cliJs = path.join(outDir, 'cli.js');
    // Type errors elsewhere are `tsc --noEmit`'s business; what matters here is that it emitted.
    if (!existsSync(cliJs)) throw new Error(`tsc did not emit cli.js (exit ${build.code}):\n${build.stdout}${build.stderr}`);
    await copyFile(path.join(root, 'package.json'), path.join(buildDir, 'package.json'));
    // What `npm run build` copies beside the compiled code.
    await copyFile(path.join(root, 'src/targets/container/batch.sh'), path.join(outDir, 'targets/container/batch.sh'));
    await cp(path.join(root, 'src/ingest/ui/assets'), path.join(outDir, 'ingest/ui/assets'), { recursive: true });
    await symlink(path.join(root, 'node_modules'), path.join(buildDir, 'node_modules'), 'dir');
  }, 90_000);

  afterAll(async () => {
    if (buildDir) await rm(buildDir, { recursive: true, force: true });
  });
}

/** Environment for the CLI without anything that would change which config it reads. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const dropped = new Set(['STEVEDORE_CONFIG', 'SANDBOX_TOKEN', 'LEGACY_TOKEN', 'FORCE_COLOR']);
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !dropped.has(name)));
  return { ...env, ...extra };
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A command that runs node in turn (execs it), e.g. ['prlimit', '--nofile=160:160']. */
  wrap?: string[];
}

export function start(args: string[], { env = cleanEnv(), cwd = root, wrap = [] }: CliOptions = {}): ChildProcessWithoutNullStreams {
  const [command = process.execPath, ...rest] = [...wrap, process.execPath];
  const child = spawn(command, [...rest, cliJs, ...args], { env, cwd, stdio: 'pipe' });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

export function finished(child: ChildProcessWithoutNullStreams, timeoutMs = 15_000): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stevedore did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export const cli = (args: string[], options?: CliOptions) => finished(start(args, options));

/** script(1) from util-linux: gives the CLI a pseudo-terminal as stdout and stderr. */
export const hasScript = existsSync('/usr/bin/script');

const shellQuote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

/** Runs the CLI on a pseudo-terminal; `output` is what it wrote there (stdout and stderr, \n as \r\n). */
export async function cliOnTerminal(args: string[], { env = cleanEnv(), cwd = root }: CliOptions = {}): Promise<{ code: number | undefined; output: string }> {
  const command = [process.execPath, cliJs, ...args].map(shellQuote).join(' ');
  const result = await execa('/usr/bin/script', ['-qec', command, '/dev/null'], { env, cwd, extendEnv: false, reject: false, stdin: 'ignore', stripFinalNewline: false, timeout: 60_000 });
  return { code: result.exitCode, output: String(result.stdout) };
}
