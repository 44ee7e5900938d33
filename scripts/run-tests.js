#!/usr/bin/env node
// `npm test`: the native unit tests under sanitizers, then every JS/TS test
// (unit tests beside the code in src/, integration and kernel tests in test/).
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
step('TypeScript tests', process.execPath, ['--test', '--test-concurrency=1', 'dist/src', 'dist/test']);
