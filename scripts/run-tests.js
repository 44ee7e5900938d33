#!/usr/bin/env node
// `npm test`: the native unit tests under sanitizers, the libFuzzer targets
// for 30 s each (scripts/fuzz.js --test: any crash, leak or UBSan report
// fails; without clang it skips, under CI=1 it fails), then every JS/TS
// test (unit tests beside the code in src/, integration and kernel tests
// in test/).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
function step(name, cmd, args) {
  process.stderr.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`\n== ${name} FAILED (exit ${r.status ?? r.signal})\n`);
    process.exit(1);
  }
}

step('native unit tests (ASan + UBSan)', process.execPath, [path.join(__dirname, 'native-tests.js')]);
step('fuzz targets (libFuzzer + ASan + UBSan, 30 s each)', process.execPath, [path.join(__dirname, 'fuzz.js'), '--test']);
step('TypeScript tests', process.execPath, ['--test', '--test-concurrency=1', 'dist/src', 'dist/test']);
