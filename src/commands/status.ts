// `stevedore status [--json]`: the running agent's GET /status, raw or as tables.
import type { Config } from '../config/load.js';
import type { StatusJson } from '../observe/status.js';
import { answerError, ask } from './client.js';
import { EXIT } from './exit.js';
import { formatBytes } from '../config/units.js';
import { table } from './table.js';

export async function status(config: Config, json: boolean): Promise<number> {
  const answer = await ask(config, 'GET', '/status');
  if (answer.status !== 200) throw answerError(answer);
  process.stdout.write(json ? `${JSON.stringify(answer.body, null, 2)}\n` : render(answer.body as StatusJson));
  return EXIT.ok;
}

function render(s: StatusJson): string {
  const parts = [
    `queue: ${s.queue.depth} of ${s.queue.capacity}, ${s.queue.in_flight} batch(es) pushing; up ${s.uptime_seconds}s`,
    ...(s.receiving ? [`receiving: ${s.receiving.bodies} of ${s.receiving.limit} bodies (${s.receiving.anonymous} of ${s.receiving.anonymous_limit} without a token), ${formatBytes(s.receiving.bytes)} so far`] : []),
    `spool: ${s.spool.files} file(s), ${formatBytes(s.spool.bytes)}${s.spool.free_bytes === undefined ? '' : `, ${formatBytes(s.spool.free_bytes)} free`}; dead-letter: ${s.dead_letter}`,
    '',
    table(
      ['TARGET', 'RUNTIME', 'WHERE', 'STATE', 'SINCE', 'QUEUED', 'PUSHING', 'DEAD', 'LAST ERROR'],
      s.targets.map((t) => [t.name, t.runtime, t.where, t.up ? 'up' : 'DOWN', t.since ?? '', String(t.queued), String(t.pushing), String(t.dead_letter), t.last_error ? `${t.last_error.code}: ${t.last_error.message}` : '']),
    ),
  ];
  for (const fleet of s.fleets) {
    parts.push('', `fleet ${fleet.name}: ${fleet.members.length} member(s)${fleet.following ? '' : ' (NOT following its runtime\'s events now)'}`);
    if (fleet.members.length > 0) {
      parts.push(table(['MEMBER', 'RUNNING', 'READY', 'STATE', 'QUEUED', 'PUSHING', 'LAST ERROR'], fleet.members.map((m) => [m.name, m.running ? 'yes' : 'no', m.ready ? 'yes' : 'catching up', m.up ? 'up' : 'DOWN', String(m.queued), String(m.pushing), m.last_error ? `${m.last_error.code}: ${m.last_error.message}` : ''])));
    }
  }
  if (s.watches.length > 0) {
    parts.push('', table(['WATCH', 'MODE', 'STATE', 'PATHS', 'PENDING', 'PATH'], s.watches.map((w) => [w.name, w.mode, w.error ? `${w.state} (${w.error})` : w.state, String(w.paths), String(w.pending), w.path])));
  }
  if (s.recent_failures.length > 0) {
    parts.push('', 'recent failures:', table(['TASK', 'TARGET', 'DEST', 'CODE', 'MESSAGE'], s.recent_failures.map((f) => [f.id, f.target, f.dest, f.code ?? '', f.message ?? ''])));
  }
  return `${parts.join('\n')}\n`;
}
