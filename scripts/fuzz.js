#!/usr/bin/env node
// The libFuzzer targets of native/fuzz (one per file, listed in
// native/sources.json "fuzz"): builds them with clang under libFuzzer +
// AddressSanitizer + UBSan in build-fuzz/, makes their seed corpora, replays
// the committed regression inputs (native/fuzz/regressions/TARGET/*), and
// runs each target for a bounded time.
//
//   node scripts/fuzz.js [--seconds N] [--jobs J] [--targets a,b] [--test]
//
//   --seconds N   per target (default 600; 30 with --test)
//   --jobs J      targets run at once (default 2, the most this 2-core
//                 machine shared with others should get)
//   --timeout T   seconds of wall time one input may take before it is
//                 reported as a hang (default 300; 60 with --test): wall
//                 time, so generous on a shared machine (see fuzzOne)
//   --targets     a comma-separated subset (parse,conntrack,...)
//   --merge       replace only these targets' entries in an existing
//                 bench/results/fuzz.json (each entry has its own date)
//   --test        `npm test`'s mode: a fresh corpus per run, no results
//                 written; without clang it skips with a message, unless
//                 CI=1, where a missing clang fails
//
// `npm run fuzz` keeps its corpora in build-fuzz/corpus/TARGET (so runs
// build on each other), prints execs/s, coverage (libFuzzer's cov: edges
// and ft: features) and corpus size per target, and writes
// bench/results/fuzz.json. Any crash, leak, UBSan report, FUZZ_CHECK
// failure or timeout fails the run (exit 1) and leaves the input in
// build-fuzz/artifacts/; add it to native/fuzz/regressions/TARGET/ with
// the fix, and the suite replays it from then on.
//
// Seeds are derived at run time, never committed: every frame of every
// *.pcap in the repo is split into build-fuzz/frames/, and each target
// writes its own seeds from those (its input format lives next to its
// parser: FLATWALL_FUZZ_SEEDS / FLATWALL_FUZZ_FRAMES, fuzz_common.h); the
// table-set target also gets the packed buffers the TypeScript compiler
// makes of the repo's rule files (test/fixtures, rules/examples) in
// build-fuzz/tables/ (FLATWALL_FUZZ_TABLES).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
// FLATWALL_FUZZ_BUILD_DIR moves it (e.g. a test run beside a long
// campaign, whose binaries must not be relinked under it).
const dir = process.env.FLATWALL_FUZZ_BUILD_DIR ? path.resolve(process.env.FLATWALL_FUZZ_BUILD_DIR) : path.join(root, 'build-fuzz');

// Per target: the longest input libFuzzer makes (the seed images are
// ~10-25 KB; frames need a little over 1232 + headers for the ICMPv6 quote
// limit).
const MAX_LEN = { parse: 4096, conntrack: 4096, ct_import: 4096, reject: 4096, image: 65536, tableset: 8192, derive: 2048, sets: 4096, ruletext: 16384 };

function parseArgs(argv) {
  const o = { seconds: undefined, jobs: 2, targets: undefined, test: false, merge: false, timeout: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`option '${a}' requires an argument`);
      return argv[++i];
    };
    if (a === '--seconds') o.seconds = Number(value());
    else if (a === '--jobs') o.jobs = Number(value());
    else if (a === '--timeout') o.timeout = Number(value());
    else if (a === '--targets') o.targets = value().split(',').filter(Boolean);
    else if (a === '--test') o.test = true;
    else if (a === '--merge') o.merge = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/fuzz.js [--seconds N] [--jobs J] [--timeout T] [--targets a,b] [--merge] [--test]\n');
      process.exit(0);
    } else usage(`unknown option '${a}'`);
  }
  if (o.seconds === undefined) o.seconds = o.test ? 30 : 600;
  if (o.timeout === undefined) o.timeout = o.test ? 60 : 300;
  if (!(Number.isInteger(o.timeout) && o.timeout > 0)) usage('--timeout must be a positive integer');
  if (!(Number.isInteger(o.seconds) && o.seconds > 0)) usage('--seconds must be a positive integer');
  if (!(Number.isInteger(o.jobs) && o.jobs > 0)) usage('--jobs must be a positive integer');
  return o;
}

function usage(msg) {
  process.stderr.write(`fuzz: ${msg}\nTry 'node scripts/fuzz.js --help' for more information.\n`);
  process.exit(2);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) fail(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
  return r;
}

function fail(msg) {
  process.stderr.write(`fuzz: ${msg}\n`);
  process.exit(1);
}

// clang++'s version line, when it can link a libFuzzer + ASan + UBSan
// program (clang without libclang-rt-14-dev cannot); null otherwise.
function haveClang() {
  const r = spawnSync('clang++', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-probe-'));
  try {
    const src = path.join(tmp, 'probe.cc');
    fs.writeFileSync(src, '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n');
    const c = spawnSync('clang++', ['-fsanitize=fuzzer,address,undefined', src, '-o', path.join(tmp, 'probe')], { encoding: 'utf8' });
    if (c.status !== 0) {
      process.stderr.write(`fuzz: clang++ cannot link a libFuzzer program:\n${(c.stderr || '').split('\n').slice(0, 5).join('\n')}\n`);
      return null;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return r.stdout.split('\n')[0].trim();
}

// ---- seeds ------------------------------------------------------------------

// Every *.pcap under the repo, build and dependency trees aside.
function findPcaps(d = root, out = []) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('build')) continue;
    const p = path.join(d, e.name);
    if (e.isDirectory()) findPcaps(p, out);
    else if (e.isFile() && e.name.endsWith('.pcap')) out.push(p);
  }
  return out.sort();
}

// The Ethernet frames of a classic pcap file (either byte order, usec or
// nsec timestamps); anything else is skipped with a note.
function pcapFrames(file) {
  const b = fs.readFileSync(file);
  if (b.length < 24) return [];
  const m = b.readUInt32LE(0);
  let le;
  if (m === 0xa1b2c3d4 || m === 0xa1b23c4d) le = true;
  else if (m === 0xd4c3b2a1 || m === 0x4d3cb2a1) le = false;
  else {
    process.stderr.write(`fuzz: ${path.relative(root, file)}: not a classic pcap file, skipped\n`);
    return [];
  }
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  if (u32(20) !== 1) {
    process.stderr.write(`fuzz: ${path.relative(root, file)}: link type ${u32(20)} is not Ethernet, skipped\n`);
    return [];
  }
  const frames = [];
  for (let off = 24; off + 16 <= b.length;) {
    const len = u32(off + 8);
    if (off + 16 + len > b.length) break;
    frames.push(b.subarray(off + 16, off + 16 + len));
    off += 16 + len;
  }
  return frames;
}

function splitPcaps() {
  const out = path.join(dir, 'frames');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  let n = 0;
  const pcaps = findPcaps();
  for (const p of pcaps) {
    const base = path.basename(p, '.pcap');
    pcapFrames(p).forEach((f, i) => {
      fs.writeFileSync(path.join(out, `${base}-${String(i).padStart(4, '0')}.bin`), f);
      n++;
    });
  }
  process.stderr.write(`fuzz: ${n} seed frames from ${pcaps.length} pcap files\n`);
  return out;
}

// Packed buffers of the repo's rule files, by the TypeScript compiler
// (dist/ must be built: `npx tsc -p .`), into build-fuzz/tables/.
function compileRuleFiles() {
  const out = path.join(dir, 'tables');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  let load;
  try {
    load = require(path.join(root, 'dist/src/rules/load.js'));
  } catch (e) {
    process.stderr.write(`fuzz: dist/ not built (${e.code || e.message}): no compiled rule seeds\n`);
    return out;
  }
  let n = 0;
  for (const d of ['test/fixtures', 'rules/examples']) {
    const full = path.join(root, d);
    if (!fs.existsSync(full)) continue;
    for (const f of fs.readdirSync(full).filter((x) => x.endsWith('.rules')).sort()) {
      try {
        const { compiled } = load.loadRuleFiles([path.join(full, f)]);
        fs.writeFileSync(path.join(out, `rules-${path.basename(d)}-${f}`), Buffer.from(compiled.buffer));
        n++;
      } catch (e) {
        process.stderr.write(`fuzz: ${d}/${f}: not compiled (${String(e.message).split('\n')[0]})\n`);
      }
    }
  }
  process.stderr.write(`fuzz: ${n} packed buffers compiled from the repo's rule files\n`);
  return out;
}

// The repo's rule files as text (the text fast path's seeds), into
// build-fuzz/rules/ (FLATWALL_FUZZ_RULES).
function ruleTexts() {
  const out = path.join(dir, 'rules');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  let n = 0;
  const copy = (from, name) => {
    fs.copyFileSync(from, path.join(out, name));
    n++;
  };
  for (const d of ['test/fixtures', 'rules/examples']) {
    const full = path.join(root, d);
    if (!fs.existsSync(full)) continue;
    for (const f of fs.readdirSync(full).filter((x) => x.endsWith('.rules')).sort()) copy(path.join(full, f), `${path.basename(d)}-${f}`);
  }
  const corpus = path.join(root, 'test/corpus');
  for (const d of fs.existsSync(corpus) ? fs.readdirSync(corpus).sort() : []) {
    const full = path.join(corpus, d);
    if (!fs.statSync(full).isDirectory()) continue;
    for (const f of fs.readdirSync(full).filter((x) => /\.v[46]$/.test(x)).sort()) copy(path.join(full, f), `corpus-${d}-${f}`);
  }
  process.stderr.write(`fuzz: ${n} rule files as text seeds\n`);
  return out;
}

function makeSeeds(target, frames, tables, rules) {
  const out = path.join(dir, 'seeds', target);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const env = {
    ...process.env, FLATWALL_FUZZ_SEEDS: out, FLATWALL_FUZZ_FRAMES: frames, FLATWALL_FUZZ_TABLES: tables, FLATWALL_FUZZ_RULES: rules,
    ASAN_OPTIONS: 'detect_leaks=0',
  };
  run(path.join(dir, `${target}_fuzz`), [], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  return out;
}

// ---- runs -------------------------------------------------------------------

const SAN_ENV = {
  // Every report is fatal; leaks are reported (libFuzzer checks after each
  // input that allocated more than it freed). A small quarantine keeps the
  // RSS of two targets modest on a shared machine.
  ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=64:allocator_may_return_null=0',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
};

function replayRegressions(target) {
  const d = path.join(root, 'native/fuzz/regressions', target);
  if (!fs.existsSync(d)) return 0;
  const files = fs.readdirSync(d).filter((f) => !f.startsWith('.') && !f.endsWith('.md')).map((f) => path.join(d, f));
  if (!files.length) return 0;
  const r = spawnSync(path.join(dir, `${target}_fuzz`), files, {
    cwd: root, env: { ...process.env, ...SAN_ENV }, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    process.stderr.write((r.stderr || '').split('\n').slice(-60).join('\n') + '\n');
    fail(`${target}: a committed regression input fails again (native/fuzz/regressions/${target})`);
  }
  return files.length;
}

// The figures of a libFuzzer log: the last status line and the final stats.
function figures(log) {
  const f = {};
  const status = [...log.matchAll(/^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)\/(\d+)(b|Kb|Mb)/gm)].pop();
  if (status) {
    const unit = { b: 1, Kb: 1024, Mb: 1024 * 1024 }[status[6]];
    Object.assign(f, { cov: +status[2], ft: +status[3], corpus_units: +status[4], corpus_bytes: +status[5] * unit });
  }
  const stat = (k) => {
    const m = log.match(new RegExp(`^stat::${k}:\\s+(\\d+)`, 'm'));
    return m ? +m[1] : undefined;
  };
  f.execs = stat('number_of_executed_units');
  f.execs_per_sec = stat('average_exec_per_sec');
  f.new_units = stat('new_units_added');
  f.peak_rss_mb = stat('peak_rss_mb');
  return f;
}

// The children's user + system time from bash's `times` (its second line,
// e.g. "61m2.340s 0m1.020s"), in seconds.
function childCpuSeconds(out) {
  const line = out.trim().split('\n')[1] || '';
  const t = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => +m[1] * 60 + +m[2]);
  return t.length === 2 ? Math.round((t[0] + t[1]) * 10) / 10 : undefined;
}

function fuzzOne(target, seconds, timeout, corpus, seeds) {
  fs.mkdirSync(corpus, { recursive: true });
  const artifacts = path.join(dir, 'artifacts');
  fs.mkdirSync(artifacts, { recursive: true });
  const logFile = path.join(dir, 'logs', `${target}.log`);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  // -timeout is wall time (libFuzzer's SIGALRM): at nice 19 on this shared
  // machine (load 8) a 9 ms conntrack input was once held 12 s, in ASan's
  // allocator handing memory back (madvise), and ended a 3600 s run with a
  // "timeout" that replays in 9 ms; a run in SCHED_IDLE gets even less. A
  // real hang (an endless loop) is still caught.
  const args = [
    `-max_total_time=${seconds}`, '-print_final_stats=1', `-max_len=${MAX_LEN[target] || 4096}`,
    `-timeout=${timeout}`, '-rss_limit_mb=2048', '-malloc_limit_mb=1024', '-print_pcs=0',
    `-artifact_prefix=${artifacts}/${target}-`, corpus, seeds,
  ];
  const t0 = Date.now();
  return new Promise((resolve) => {
    // Through bash for its `times` builtin: the CPU seconds the target
    // actually got (user + system), which on a shared machine can be far
    // below the wall seconds; Node reports no child rusage.
    const child = spawn('bash', ['-c', '"$0" "$@" >/dev/null; rc=$?; times >&3; exit $rc', path.join(dir, `${target}_fuzz`), ...args], {
      cwd: root, env: { ...process.env, ...SAN_ENV }, stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    const chunks = [];
    const timesOut = [];
    child.stderr.on('data', (c) => chunks.push(c));
    child.stdio[3].on('data', (c) => timesOut.push(c));
    child.on('close', (code, signal) => {
      const log = Buffer.concat(chunks).toString('utf8');
      fs.writeFileSync(logFile, log);
      const f = figures(log);
      f.cpu_seconds = childCpuSeconds(Buffer.concat(timesOut).toString('utf8'));
      f.nice = os.getPriority();
      const ok = code === 0 && !/^==\d+==ERROR|runtime error:|FUZZ_CHECK failed|^SUMMARY: /m.test(log);
      const artifact = (log.match(/Test unit written to (\S+)/) || [])[1];
      resolve({
        target, ok, exit: code ?? signal, seconds_planned: seconds, timeout,
        seconds: Math.round((Date.now() - t0) / 100) / 10, ...f,
        corpus_files: fs.readdirSync(corpus).length,
        artifact: artifact ? path.relative(root, artifact) : undefined,
        log: path.relative(root, logFile), tail: ok ? undefined : log.split('\n').slice(-80).join('\n'),
      });
    });
  });
}

async function pool(items, jobs, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  }));
  return results;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const all = require(path.join(root, 'native/sources.json')).fuzz.map((f) => path.basename(f, '.cc').replace(/_fuzz$/, ''));
  const targets = o.targets || all;
  for (const t of targets) if (!all.includes(t)) usage(`unknown target '${t}' (targets: ${all.join(', ')})`);
  const clang = haveClang();
  if (!clang) {
    const msg = 'no usable clang++: the fuzz targets need clang with libFuzzer (apt-get install clang libclang-rt-14-dev)';
    if (o.test && process.env.CI !== '1') {
      process.stderr.write(`fuzz: SKIPPED: ${msg}\n`);
      return;
    }
    fail(msg);
  }
  run('cmake', ['-S', '.', '-B', dir, '-DFLATWALL_FUZZ=ON', '-DCMAKE_CXX_COMPILER=clang++', '-DCMAKE_BUILD_TYPE=Debug'],
      { stdio: ['ignore', 'ignore', 'inherit'] });
  run('cmake', ['--build', dir, '-j', '2']);
  const frames = splitPcaps();
  const tables = compileRuleFiles();
  const rules = ruleTexts();
  const plan = targets.map((t) => {
    const seeds = makeSeeds(t, frames, tables, rules);
    const replayed = replayRegressions(t);
    const corpus = path.join(dir, o.test ? 'test-corpus' : 'corpus', t);
    if (o.test) fs.rmSync(corpus, { recursive: true, force: true });
    process.stderr.write(`fuzz: ${t}: ${fs.readdirSync(seeds).length} seeds, ${replayed} regression inputs replayed\n`);
    return { t, seeds, corpus };
  });
  process.stderr.write(`fuzz: running ${targets.length} targets for ${o.seconds} s each, ${o.jobs} at a time\n`);
  const results = await pool(plan, o.jobs, async (p) => {
    const r = await fuzzOne(p.t, o.seconds, o.timeout, p.corpus, p.seeds);
    process.stderr.write(`fuzz: ${r.target}: ${r.ok ? 'ok' : 'FAILED'} ${r.execs} execs in ${r.seconds} s ` +
      `(${r.cpu_seconds} s of CPU) ` +
      `(${r.execs_per_sec}/s), cov ${r.cov} ft ${r.ft}, corpus ${r.corpus_units} units ${r.corpus_bytes} bytes\n`);
    return r;
  });
  const rows = results.map((r) => `| ${r.target} | ${r.ok ? 'ok' : '**FAILED**'} | ${r.seconds} | ${r.cpu_seconds} | ${r.execs} | ${r.execs_per_sec} | ${r.cov} | ${r.ft} | ${r.corpus_units} | ${r.corpus_bytes} |`);
  process.stdout.write(['', '| target | result | seconds | CPU seconds | execs | execs/s | cov | ft | corpus units | corpus bytes |',
    '|---|---|---|---|---|---|---|---|---|---|', ...rows, ''].join('\n') + '\n');
  if (!o.test) {
    const file = path.join(root, 'bench/results/fuzz.json');
    const date = new Date().toISOString();
    const command = `node scripts/fuzz.js ${process.argv.slice(2).join(' ')}`.trim();
    let entries = results.map(({ tail, ...r }) => ({ ...r, jobs: o.jobs, date, command }));
    if (o.merge && fs.existsSync(file)) {
      const old = JSON.parse(fs.readFileSync(file, 'utf8')).targets || [];
      const ran = new Set(entries.map((e) => e.target));
      entries = all.map((t) => (ran.has(t) ? entries.find((e) => e.target === t) : old.find((e) => e.target === t))).filter(Boolean);
    }
    const out = {
      compiler: clang,
      sanitizers: 'libFuzzer + AddressSanitizer (leaks included) + UBSan, -O1',
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, note: 'shared with other jobs' },
      jobs: o.jobs,
      targets: entries,
    };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
    process.stderr.write('fuzz: wrote bench/results/fuzz.json\n');
  }
  const bad = results.filter((r) => !r.ok);
  for (const r of bad) {
    process.stderr.write(`\n== ${r.target} FAILED (exit ${r.exit}); input: ${r.artifact || 'none written'}; log: ${r.log}\n${r.tail}\n`);
  }
  if (bad.length) process.exit(1);
}

main().catch((e) => fail(e.stack || String(e)));
