// `stevedore validate`: one line per target, route, legacy rule and watch.
import type { Config } from '../config/load.js';
import { describeTarget } from '../targets/index.js';

export function summarize(config: Config): string {
  const lines = [`${config.file}: valid`];
  for (const [name, t] of Object.entries(config.targets)) {
    lines.push(`target ${name}: ${t.runtime} ${describeTarget(t)}`);
  }
  for (const r of config.http?.routes ?? []) {
    lines.push(`route ${r.name}: ${config.http?.listen}${r.path}/… → ${r.target}:${r.dest}${r.token ? ' (token)' : ' (no token)'}`);
  }
  for (const l of config.http?.legacy ?? []) lines.push(`legacy: POST /upload → ${l.target}:${l.path_prefix}/…`);
  for (const w of config.watch) lines.push(`watch ${w.name}: ${w.path} (${w.mode}) → ${w.target}:${w.dest}`);
  return `${lines.join('\n')}\n`;
}
