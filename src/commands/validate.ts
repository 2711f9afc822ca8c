// `stevedore validate`: one line per target, route, legacy rule and watch. A fleet's
// runtime is asked what its selector matches now; one that does not answer is said so
// (the config is still valid: the runtime may be down, or on another machine).
import type { Config } from '../config/load.js';
import type { TargetConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { answerWithin } from '../targets/fleet/answers.js';
import { createDiscovery } from '../targets/fleet/discovery.js';
import type { Member } from '../targets/fleet/types.js';
import { describeTarget } from '../targets/index.js';

// A runtime that takes longer is reported as not answering.
const ASK_TIMEOUT_MS = 10_000;

export async function summarize(config: Config): Promise<string> {
  const lines = [`${config.file}: valid`];
  const targets = Object.entries(config.targets);
  const matches = await Promise.all(targets.map(([, t]) => fleetNow(t)));
  targets.forEach(([name, t], i) => {
    lines.push(`target ${name}: ${t.runtime} ${describeTarget(t)}`);
    const now = matches[i];
    if (now !== undefined) lines.push(`  ${now}`);
  });
  for (const r of config.http?.routes ?? []) {
    lines.push(`route ${r.name}: ${config.http?.listen}${r.path}/… → ${r.target}:${r.dest}${r.token ? ' (token)' : ' (no token)'}`);
  }
  for (const l of config.http?.legacy ?? []) lines.push(`legacy: POST /upload → ${l.target}:${l.path_prefix}/…`);
  for (const w of config.watch) lines.push(`watch ${w.name}: ${w.path} (${w.mode}) → ${w.target}:${w.dest}`);
  return `${lines.join('\n')}\n`;
}

/** What a fleet's selector matches now, in words; undefined for a target that is not a fleet. */
async function fleetNow(target: Readonly<TargetConfig>): Promise<string | undefined> {
  if (target.runtime === 'local' || target.select === undefined) return undefined;
  try {
    const members = await createDiscovery({ ...target, select: target.select }).list(answerWithin(ASK_TIMEOUT_MS, target.runtime));
    const names = members.map(describeMember).sort();
    return names.length === 0 ? 'matches nothing now' : `matches now: ${names.join(', ')}`;
  } catch (error) {
    return `what it matches now is not known: ${target.runtime} did not answer it (${errorMessage(error)})`;
  }
}

const describeMember = ({ name, running }: Member) => `${name} (${running ? 'running' : 'not running'})`;
