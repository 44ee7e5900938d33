#!/usr/bin/env node
// flatwall command line. Each subcommand validates its arguments and calls
// into the library; exit codes follow Linux conventions (0 ok, 1 errors found,
// 2 usage).
import { EXIT_ERRORS, EXIT_OK, EXIT_USAGE, UsageError } from './args';
import { excerpt } from '../rules/errors';
import { runCheck } from './check';
import { runPrint } from './print';
import { runGen } from './gen';
import { runReplay } from './replay';
import { runRun } from './run';
import { runLab } from './lab';
import { runCtl, runSave } from './ctl';
import { runCompile } from './compile';

const VERSION: string = require('../../../package.json').version;

const HELP = `Usage: flatwall COMMAND [OPTIONS]

A userspace packet-filtering firewall whose speed does not depend on the
number of rules. Reads iptables-save / ip6tables-save files or its native
JSON/YAML format.

Commands:
  check FILE...    parse, validate and compile rules; print a summary
  print FILE...    print rules in canonical iptables-save form, or convert them
  gen FAMILY N     generate a deterministic rule set for tests and benchmarks
  replay           decide every frame of a pcap capture offline (--rules, --pcap)
  compile FILE...  compile rules into a snapshot for fast restart (-o SNAPSHOT)
  run              run the firewall between pairs of ports (--port, --tap, --rules)
  ctl COMMAND      talk to a running firewall: reload, list, insert, delete, policy, stats, zero,
                   conntrack, ipset
  save [-c]        print the running rules in iptables-save form (with counters)
  lab              namespace lab: firewall + rules between a sender and a receiver, traffic check

Run 'flatwall COMMAND --help' for a command's options.

Options:
  -h, --help       show this help
  -V, --version    show the version
`;

type Command = (argv: string[]) => number | Promise<number>;
const COMMANDS: Record<string, Command> = {
  check: runCheck,
  print: runPrint,
  gen: runGen,
  replay: runReplay,
  run: runRun,
  lab: runLab,
  ctl: runCtl,
  save: runSave,
  compile: runCompile,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (cmd === '-V' || cmd === '--version') {
    process.stdout.write(`flatwall ${VERSION}\n`);
    return EXIT_OK;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    const what = cmd.startsWith('-') ? 'option' : 'command';
    process.stderr.write(`flatwall: unknown ${what} '${excerpt(cmd)}'\nTry 'flatwall --help'.\n`);
    return EXIT_USAGE;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`flatwall ${cmd}: ${excerpt(err.message, 1024)}\nTry 'flatwall ${cmd} --help'.\n`);
      return EXIT_USAGE;
    }
    // A bug's trace: its message may quote input, so that line is excerpted.
    const e = err as Error;
    const frames = String(e?.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).join('\n');
    process.stderr.write(`flatwall ${cmd}: ${excerpt(String(e?.message ?? err), 1024)}${frames ? `\n${frames}` : ''}\n`);
    return EXIT_ERRORS;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
