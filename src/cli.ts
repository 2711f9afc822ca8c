#!/usr/bin/env node
// argv → command → exit code (SPEC §1). No logic of its own beyond wiring and printing.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { EXIT } from './commands/exit.js';
import { run } from './commands/run.js';
import { summarize } from './commands/validate.js';
import { loadConfig } from './config/load.js';
import { configSchema } from './config/schema.js';
import { errorMessage, isStevedoreError } from './errors.js';

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
