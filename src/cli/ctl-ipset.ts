// flatwall ctl ipset: the running firewall's IP sets in ipset(8)'s argument
// shapes and output (list, save, test's messages and exit status), over the
// management API (src/control/ipset-routes.ts). Every edit is sent as one
// line of ipset restore text, so the server parses it exactly as a restore
// file or `--ipset` file.
import { readFileSync, writeFileSync } from 'node:fs';
import { errnoText } from '../rules/errors';
import { argsToLine } from '../sets/parse';
import { EXIT_ERRORS, EXIT_OK, UsageError } from './args';
import { apiCall, type ApiConn } from './ctl';

export const IPSET_HELP = `Usage: flatwall ctl [CTL-OPTIONS] ipset [OPTIONS] COMMAND [ARGS]

ipset(8) for the running firewall's sets.

Commands:
  create SETNAME TYPENAME [CREATE-OPTIONS]   hash:ip, hash:net, hash:ip,port,
                                             hash:net,port, bitmap:port
        family inet|inet6  hashsize N  maxelem N  timeout N  counters  comment
        range FROM-TO (bitmap:port)
  add SETNAME ENTRY [timeout N] [nomatch] [comment STRING] [packets N bytes N]
  del SETNAME ENTRY
  test SETNAME ENTRY        exit 0 when ENTRY is in the set, 1 when not
  destroy [SETNAME]         (all sets without a name)
  flush [SETNAME]
  list [SETNAME]            -t headers only, -n names only, -o save
  save [SETNAME]            ipset save form (-f FILE: into FILE)
  restore                   ipset restore from stdin (-f FILE: from FILE); all or nothing
  swap FROM TO | rename FROM TO

Options:
  -exist, -!                no error for an existing set or element (or a missing one on del)
  -q, -quiet                no output from test
  -s, -sorted               sorted output (always: members are listed in ipset -s order)
  -n, -name  -t, -terse  -o, -output plain|save  -f, -file FILE

Exit status: 0 ok (test: in the set), 1 errors (test: not in the set), 2 usage.
`;

const ALIASES: Record<string, string> = {
  create: 'create', n: 'create', '-N': 'create', add: 'add', a: 'add', '-A': 'add', del: 'del', d: 'del', '-D': 'del',
  test: 'test', t: 'test', '-T': 'test', destroy: 'destroy', x: 'destroy', '-X': 'destroy', flush: 'flush', f: 'flush',
  '-F': 'flush', list: 'list', l: 'list', '-L': 'list', save: 'save', s: 'save', '-S': 'save', restore: 'restore',
  r: 'restore', '-R': 'restore', swap: 'swap', w: 'swap', '-W': 'swap', rename: 'rename', e: 'rename', '-E': 'rename',
};

interface Opts {
  exist: boolean;
  quiet: boolean;
  names: boolean;
  terse: boolean;
  output: 'plain' | 'save';
  file?: string;
}

function parseArgs(argv: string[]): { opts: Opts; cmd: string | undefined; args: string[] } {
  const opts: Opts = { exist: false, quiet: false, names: false, terse: false, output: 'plain' };
  let cmd: string | undefined;
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    // A comment's value is never an option.
    const valueOfComment = i > 0 && argv[i - 1] === 'comment' && cmd !== undefined;
    if (!valueOfComment) {
      if (a === '-exist' || a === '-!' || a === '--exist') { opts.exist = true; continue; }
      if (a === '-q' || a === '-quiet' || a === '--quiet') { opts.quiet = true; continue; }
      if (a === '-s' || a === '-sorted' || a === '--sorted') continue;
      if (a === '-n' || a === '-name' || a === '--name') { opts.names = true; continue; }
      if (a === '-t' || a === '-terse' || a === '--terse') { opts.terse = true; continue; }
      if (a === '-o' || a === '-output' || a === '--output') {
        const v = argv[++i];
        if (v !== 'plain' && v !== 'save') throw new UsageError(`ipset: -output must be plain or save, got "${v ?? ''}"`);
        opts.output = v;
        continue;
      }
      if (a === '-f' || a === '-file' || a === '--file') {
        const v = argv[++i];
        if (v === undefined) throw new UsageError('ipset: -file needs a file name');
        opts.file = v;
        continue;
      }
    }
    if (cmd === undefined) {
      if (a === '-h' || a === '--help' || a === 'help') return { opts, cmd: 'help', args: [] };
      cmd = ALIASES[a];
      if (!cmd) throw new UsageError(`ipset: unknown command '${a}'`);
      continue;
    }
    args.push(a);
  }
  return { opts, cmd, args };
}

class Failure extends Error {}

// `full`: the message with its <request>:LINE:COLUMN (a restore of many lines).
async function request(c: ApiConn, method: string, path: string, body?: string, full = false) {
  let a;
  try {
    a = await apiCall(c, method, path, body, 'text/plain');
  } catch (err) {
    throw new Failure(`cannot reach the API at ${c.url ? c.url.href : c.socket}: ${errnoText(err as NodeJS.ErrnoException)}`);
  }
  if (a.status >= 400) throw new Failure((full ? a.json?.error : a.json?.reason ?? a.json?.error) ?? `HTTP ${a.status}: ${a.body.trim()}`);
  return a;
}

const enc = encodeURIComponent;

export async function runCtlIpset(c: ApiConn, argv: string[]): Promise<number> {
  const { opts, cmd, args } = parseArgs(argv);
  if (cmd === 'help') {
    process.stdout.write(IPSET_HELP);
    return EXIT_OK;
  }
  if (!cmd) throw new UsageError('ipset: no command specified');
  const arity = (min: number, max: number) => {
    if (args.length < min) throw new UsageError(`ipset: ${cmd} needs ${min === 1 ? 'a set name' : `${min} arguments`}`);
    if (args.length > max) throw new UsageError(`ipset: unexpected argument '${args[max]}' to ${cmd}`);
  };
  try {
    // Restore text cannot carry a double quote inside a token (ipset refuses it in comments too).
    const quoted = args.find((a) => a.includes('"'));
    if (quoted !== undefined) throw new Failure(args[args.indexOf(quoted) - 1] === 'comment' ? 'Syntax error: " character is not permitted in comments' : `Syntax error: '${quoted}': " is not allowed in an argument`);
    switch (cmd) {
      case 'create': case 'add': case 'del': case 'swap': case 'rename': case 'destroy': case 'flush': {
        if (cmd === 'create' || cmd === 'add' || cmd === 'del' || cmd === 'swap' || cmd === 'rename') arity(2, Infinity);
        else arity(0, 1);
        await request(c, 'POST', `/sets${opts.exist ? '?exist=1' : ''}`, `${argsToLine([cmd, ...args])}\n`);
        return EXIT_OK;
      }
      case 'test': {
        arity(2, 2);
        const a = await request(c, 'GET', `/sets/${enc(args[0])}/test?entry=${enc(args[1])}`);
        const { element, present } = a.json!;
        if (!opts.quiet) process.stderr.write(present ? `Warning: ${element} is in set ${args[0]}.\n` : `${element} is NOT in set ${args[0]}.\n`);
        return present ? EXIT_OK : EXIT_ERRORS;
      }
      case 'list': case 'save': {
        arity(0, 1);
        const base = args[0] ? `/sets/${enc(args[0])}` : '/sets';
        const format = cmd === 'save' || opts.output === 'save' ? 'save' : opts.names ? 'names' : 'list';
        const a = await request(c, 'GET', `${base}?format=${format}${opts.terse ? '&terse=1' : ''}`);
        if (cmd === 'save' && opts.file) writeFileSync(opts.file, a.body);
        else process.stdout.write(a.body);
        return EXIT_OK;
      }
      case 'restore': {
        arity(0, 0);
        let text: string;
        try {
          text = readFileSync(opts.file ?? 0, 'utf8');
        } catch (err) {
          throw new Failure(`cannot read ${opts.file ?? 'stdin'}: ${(err as NodeJS.ErrnoException).code}`);
        }
        await request(c, 'POST', `/sets${opts.exist ? '?exist=1' : ''}`, text, true);
        return EXIT_OK;
      }
    }
  } catch (err) {
    if (err instanceof Failure) {
      process.stderr.write(`flatwall ctl ipset: ${err.message}\n`);
      return EXIT_ERRORS;
    }
    throw err;
  }
  return EXIT_OK;
}
