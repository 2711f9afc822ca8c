// The one logger factory: JSON lines for machines, pino-pretty on a terminal.
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { PrettyOptions, PrettyStream } from 'pino-pretty';

export interface LogOptions {
  level: string;
  format: 'json' | 'pretty' | 'auto';
}

export function createLogger({ level, format }: LogOptions, stream: NodeJS.WritableStream = process.stdout): Logger {
  const usePretty = format === 'pretty' || (format === 'auto' && 'isTTY' in stream && stream.isTTY === true);
  const options = { level, base: { pid: process.pid }, redact: ['token', '*.token', 'authorization', '*.authorization'] };
  if (!usePretty) return pino(options, stream);
  return pino(options, loadPretty()({ destination: stream, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}

// pino-pretty and its dependencies cost ~10 MB of memory: loaded only for a terminal.
function loadPretty(): (options: PrettyOptions) => PrettyStream {
  return createRequire(import.meta.url)('pino-pretty') as (options: PrettyOptions) => PrettyStream;
}
