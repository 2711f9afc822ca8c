#!/usr/bin/env node
// argv → command → exit code (SPEC §1). No logic of its own beyond wiring and printing.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { deadLetterCommand } from './commands/dead-letter.js';
import { EXIT } from './commands/exit.js';
import { PUSH_USAGE, push } from './commands/push.js';
import { reload } from './commands/reload.js';
import { run } from './commands/run.js';
import { status } from './commands/status.js';
import { summarize } from './commands/validate.js';
import { loadConfig } from './config/load.js';
import { configSchema } from './config/schema.js';
import { errorMessage, isStevedoreError } from './errors.js';

const HELP = `stevedore — moves files dropped on a host into containers

Usage: stevedore <command> [options]

Commands:
  run [-c FILE]        run the agent until SIGINT/SIGTERM
  validate [-c FILE]   check the config and summarize it
  push [-c FILE] LOCAL_FILE TARGET:/ABS/PATH
                       push one file into a target now (no agent needed)
  reload [-c FILE]     make the running agent re-read its config (SIGHUP)
  status [-c FILE] [--json]
                       the running agent's queue, targets, watches, recent failures
  dead-letter list | retry ID | retry --all | purge ID [-c FILE]
                       inspect and replay files that failed for good
  schema               print the config file's JSON Schema

Options:
  -c, --config FILE    config file (default: $STEVEDORE_CONFIG, then ./stevedore.yaml)
  -h, --help           show help
  -v, --version        show the version
`;

const COMMAND_HELP: Record<string, string> = {
  run: 'Usage: stevedore run [-c FILE]\nRuns the agent; SIGINT/SIGTERM drain and stop it (exit 0). Exit 1 on a fatal error, 2 on a bad config.\n',
  validate: 'Usage: stevedore validate [-c FILE]\nLoads and checks the config; prints one line per route, watch and target, and for a fleet\nwhat its selector matches now (when its runtime answers). Exit 0 valid, 2 invalid.\n',
  push: `Usage: ${PUSH_USAGE}\nPushes one file now with the config's target, mode, owner and retry rules; no agent needed.\nExit 0 pushed, 1 failed, 2 bad arguments or config. A progress bar shows on a terminal for files over 8 MiB.\n`,
  reload: 'Usage: stevedore reload [-c FILE]\nChecks the config file, then sends SIGHUP to the agent running on this config\'s state_dir (its pid is in state_dir/agent.pid). Exit 0 sent, 1 no agent.\n',
  status: 'Usage: stevedore status [-c FILE] [--json]\nAsks the running agent (its http listener) for its state and prints it as tables, or raw with --json.\nExit 0, 1 when the agent is unreachable.\n',
  'dead-letter':
    'Usage: stevedore dead-letter list | retry ID | retry --all | purge ID [-c FILE]\nWorks through the running agent when it answers, else directly on state_dir (stop the agent first).\nA retried entry is journaled and queued again; purge deletes only the entry it names. Exit 0, 1 on failure.\n',
  schema: 'Usage: stevedore schema\nPrints the JSON Schema of the config file, for editors.\n',
};

// How many operands each command takes (push checks its own).
const OPERANDS: Record<string, number> = { run: 0, validate: 0, reload: 0, status: 0, schema: 0, 'dead-letter': 2 };

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
        json: { type: 'boolean' },
        all: { type: 'boolean' },
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
  // An operand a command does not take is a usage error: `stevedore validate my.yaml`
  // must not check ./stevedore.yaml and say "valid".
  const extra = positionals[1 + (OPERANDS[command] ?? Infinity)];
  if (extra !== undefined) {
    process.stderr.write(`stevedore: ${command}: unexpected operand "${extra}"${command === 'schema' ? '' : ' (a config file is given with -c FILE)'}\nRun "stevedore ${command} --help" for usage.\n`);
    return EXIT.badConfig;
  }
  // An empty $STEVEDORE_CONFIG counts as unset.
  const configFile = values.config || process.env.STEVEDORE_CONFIG || './stevedore.yaml';
  switch (command) {
    case 'run':
      return run(await loadConfig(configFile));
    case 'validate':
      return print(await summarize(await loadConfig(configFile)));
    case 'push':
      return push(positionals.slice(1), configFile);
    case 'reload':
      return reload(await loadConfig(configFile));
    case 'status':
      return status(await loadConfig(configFile), values.json === true);
    case 'dead-letter':
      return deadLetterCommand(await loadConfig(configFile), positionals[1], positionals[2], values.all === true);
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
