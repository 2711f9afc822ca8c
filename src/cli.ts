#!/usr/bin/env node
// argv → command → exit code (SPEC §1). No logic of its own beyond wiring and printing.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createAgent } from './agent.js';
import { loadConfig, type Config } from './config/load.js';
import { configSchema } from './config/schema.js';
import { errorMessage, isStevedoreError } from './errors.js';
import { createLogger } from './log.js';

const EXIT = { ok: 0, fatal: 1, badConfig: 2 } as const;

const HELP = `stevedore — moves files dropped on a host into containers

Usage: stevedore <command> [options]

Commands:
  run [-c FILE]        run the agent until SIGINT/SIGTERM
  validate [-c FILE]   check the config and summarize it
  schema               print the config file's JSON Schema

Options:
  -c, --config FILE    config file (default: $STEVEDORE_CONFIG, then ./stevedore.yaml)
  -h, --help           show help
  -v, --version        show the version
`;

const COMMAND_HELP: Record<string, string> = {
  run: 'Usage: stevedore run [-c FILE]\nRuns the agent; SIGINT/SIGTERM drain and stop it (exit 0). Exit 1 on a fatal error, 2 on a bad config.\n',
  validate: 'Usage: stevedore validate [-c FILE]\nLoads and checks the config; prints one line per route, watch and target. Exit 0 valid, 2 invalid.\n',
  schema: 'Usage: stevedore schema\nPrints the JSON Schema of the config file, for editors.\n',
};

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    // A usage error (unknown option, -c without a value): exit 2 like an unknown command.
    process.stderr.write(`stevedore: ${errorMessage(error)}\nRun "stevedore --help" for usage.\n`);
    return EXIT.badConfig;
  }
  const { values, positionals } = args;
  const [command] = positionals;
  if (values.version) return print(`${version()}\n`);
  if (values.help || !command) return print(command ? (COMMAND_HELP[command] ?? HELP) : HELP);
  // An empty $STEVEDORE_CONFIG counts as unset.
  const configFile = values.config || process.env.STEVEDORE_CONFIG || './stevedore.yaml';
  switch (command) {
    case 'run':
      return run(await loadConfig(configFile));
    case 'validate':
      return print(summarize(await loadConfig(configFile)));
    case 'schema':
      return print(`${JSON.stringify(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`);
    default:
      process.stderr.write(`stevedore: unknown command "${command}"\n\n${HELP}`);
      return EXIT.badConfig;
  }
}

async function run(config: Config): Promise<number> {
  const logger = createLogger(config.log);
  const agent = createAgent(config, { logger });
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      // A second signal (systemd and a terminal may both send one) must not cut the drain.
      logger.info({ signal }, stopping ? 'already stopping' : 'stopping: draining in-flight pushes');
      stopping = true;
      resolve();
    };
    process.on('SIGINT', stop).on('SIGTERM', stop);
  });
  // Node's default for SIGHUP is to die on the spot; reload is not in this version yet.
  process.on('SIGHUP', () => logger.warn('SIGHUP: reloading the config is not supported by this version; still running on the old one'));
  try {
    await agent.start();
  } catch (error) {
    // Our own errors (e.g. a runtime whose CLI is missing) are a message, not a stack trace.
    logger.fatal(isStevedoreError(error) ? { code: error.code } : { err: error }, `cannot start: ${errorMessage(error)}`);
    await agent.close().catch(() => undefined);
    return EXIT.fatal;
  }
  await stopped;
  await agent.close();
  return EXIT.ok;
}

function summarize(config: Config): string {
  const lines = [`${config.file}: valid`];
  for (const [name, t] of Object.entries(config.targets)) {
    lines.push(`target ${name}: ${t.runtime} ${t.runtime === 'local' ? t.root : t.container}`);
  }
  for (const r of config.http?.routes ?? []) {
    lines.push(`route ${r.name}: ${config.http?.listen}${r.path}/… → ${r.target}:${r.dest}${r.token ? ' (token)' : ' (no token)'}`);
  }
  for (const l of config.http?.legacy ?? []) lines.push(`legacy: POST /upload → ${l.target}:${l.path_prefix}/…`);
  for (const w of config.watch) lines.push(`watch ${w.name}: ${w.path} (${w.mode}) → ${w.target}:${w.dest}`);
  return `${lines.join('\n')}\n`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function print(text: string): number {
  process.stdout.write(text);
  return EXIT.ok;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (isStevedoreError(error, 'CONFIG_INVALID') || isStevedoreError(error, 'CONFIG_UNREADABLE')) {
      process.stderr.write(`${error.message}\n`);
      process.exitCode = EXIT.badConfig;
    } else {
      process.stderr.write(`stevedore: ${errorMessage(error)}\n`);
      process.exitCode = EXIT.fatal;
    }
  },
);
