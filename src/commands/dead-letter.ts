// `stevedore dead-letter list | retry ID | retry --all | purge ID`: through the running
// agent's API when it answers, else directly on state_dir (the agent is stopped).
import path from 'node:path';
import { pino } from 'pino';
import type { Config } from '../config/load.js';
import { StevedoreError, isStevedoreError } from '../errors.js';
import { newTask, taskJson } from '../queue/task.js';
import { createDeadLetter, type DeadEntry } from '../spool/dead-letter.js';
import { createJournal } from '../spool/journal.js';
import { replay } from '../spool/replay.js';
import { createSpool } from '../spool/spool.js';
import { answerError, ask, type Answer } from './client.js';
import { EXIT } from './exit.js';
import { formatBytes } from '../config/units.js';
import { table } from './table.js';

type Listed = Omit<DeadEntry, 'record' | 'data'> & { has_data: boolean };

export async function deadLetterCommand(config: Config, action: string | undefined, id: string | undefined, all: boolean): Promise<number> {
  if (action === 'list' && id === undefined) return list(config);
  if (action === 'retry' && (id === undefined) === all) return retry(config, all ? undefined : id);
  if (action === 'purge' && id !== undefined && !all) return purge(config, id);
  throw new StevedoreError('BAD_REQUEST', 'usage: stevedore dead-letter list | retry ID | retry --all | purge ID');
}

/** The agent's answer, or undefined when no agent answers (then the store is ours). */
async function online(config: Config, method: string, urlPath: string): Promise<Answer | undefined> {
  try {
    const answer = await ask(config, method, urlPath);
    if (answer.status >= 400) throw answerError(answer);
    return answer;
  } catch (error) {
    if (isStevedoreError(error, 'AGENT_UNREACHABLE')) return undefined;
    throw error;
  }
}

function offline(config: Config) {
  const spool = createSpool(path.join(config.state_dir, 'spool'));
  const deadLetter = createDeadLetter(path.join(config.state_dir, 'dead-letter'));
  return { spool, deadLetter };
}

async function list(config: Config): Promise<number> {
  const answer = await online(config, 'GET', '/dead-letter');
  const entries = answer ? (answer.body as { entries: Listed[] }).entries : await offline(config).deadLetter.list();
  if (entries.length === 0) {
    process.stdout.write('the dead-letter store is empty\n');
    return EXIT.ok;
  }
  const rows = entries.map((e) => [e.id, e.target, e.dest, formatBytes(e.bytes), e.failedAt, e.reason]);
  process.stdout.write(`${table(['ID', 'TARGET', 'DEST', 'SIZE', 'FAILED AT', 'REASON'], rows)}\n`);
  return EXIT.ok;
}

async function retry(config: Config, id: string | undefined): Promise<number> {
  const answer = await online(config, 'POST', id === undefined ? '/dead-letter/retry' : `/dead-letter/${encodeURIComponent(id)}/retry`);
  let tasks: Record<string, unknown>[];
  if (answer) {
    tasks = id === undefined ? (answer.body as { tasks: Record<string, unknown>[] }).tasks : [answer.body as Record<string, unknown>];
  } else {
    const { spool, deadLetter } = offline(config);
    // The agent is not running: its journal is ours to append to, and its next start queues these.
    const journal = createJournal({ file: path.join(config.state_dir, 'journal.log'), syncDirs: [spool.dir], logger: pino({ level: 'silent' }) });
    await journal.open();
    try {
      const entries = id === undefined ? await deadLetter.list() : [await deadLetter.get(id)];
      tasks = [];
      for (const entry of entries) tasks.push({ ...taskJson(newTask(await replay(entry, { spool, journal, deadLetter }))), retry_of: entry.id });
    } finally {
      await journal.close();
    }
  }
  for (const task of tasks) process.stdout.write(`queued again: ${String(task.target)}:${String(task.dest)} as task ${String(task.id)}${answer ? '' : ' (pushed at the agent\'s next start)'}\n`);
  if (tasks.length === 0) process.stdout.write('the dead-letter store is empty\n');
  return EXIT.ok;
}

async function purge(config: Config, id: string): Promise<number> {
  const answer = await online(config, 'DELETE', `/dead-letter/${encodeURIComponent(id)}`);
  if (!answer) await offline(config).deadLetter.remove(id);
  process.stdout.write(`purged ${id}\n`);
  return EXIT.ok;
}
