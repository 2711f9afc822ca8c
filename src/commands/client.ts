// Talking to a running agent through its own HTTP listener (status, dead-letter).
import { readFileSync } from 'node:fs';
import type { Config } from '../config/load.js';
import { StevedoreError, errnoCode, errorMessage } from '../errors.js';
import { parseListen } from '../config/listen.js';
import { portFile } from './pid.js';

const TIMEOUT_MS = 10_000;

/**
 * The agent's base URL, or undefined when it has no HTTP listener. A wildcard listen
 * address is reached on loopback; port 0 (any) at the port the agent recorded.
 */
export function agentUrl(config: Config): string | undefined {
  const listen = config.http?.listen;
  if (!listen) return undefined;
  const { host, port: asked } = parseListen(listen);
  const port = asked === 0 ? recordedPort(config) : asked;
  const reach = ({ '0.0.0.0': '127.0.0.1', '::': '::1' } as Record<string, string>)[host] ?? host;
  return `http://${reach.includes(':') ? `[${reach}]` : reach}:${port}`;
}

// 0 while no agent recorded one: nothing answers there, and ask() says so.
function recordedPort(config: Config): number {
  try {
    return Number(readFileSync(portFile(config), 'utf8').trim()) || 0;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 0;
    throw error;
  }
}

export interface Answer {
  status: number;
  body: unknown;
}

/** One request; AGENT_UNREACHABLE when nothing answers. */
export async function ask(config: Config, method: string, path: string): Promise<Answer> {
  const base = agentUrl(config);
  if (!base) throw new StevedoreError('AGENT_UNREACHABLE', `${config.file} has no http listener to ask the agent through`);
  if (new URL(base).port === '0') throw new StevedoreError('AGENT_UNREACHABLE', `no agent runs on ${config.state_dir}: none recorded the port it took for http.listen ${config.http?.listen ?? ''} (${portFile(config)})`);
  const token = config.http?.admin_token;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? errorMessage(error);
    throw new StevedoreError('AGENT_UNREACHABLE', `the agent at ${base} is not reachable (${cause})`, { cause: error });
  }
  const text = await res.text();
  const body: unknown = text ? JSON.parse(text) : undefined;
  return { status: res.status, body };
}

/** The error an answer carries, as our own error. */
export function answerError(answer: Answer): StevedoreError {
  const error = (answer.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  return new StevedoreError('INTERNAL', `the agent answered ${answer.status}: ${error?.code ?? ''} ${error?.message ?? ''}`.trim());
}
