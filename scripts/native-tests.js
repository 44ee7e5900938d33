#!/usr/bin/env node
// Builds and runs the native unit tests under AddressSanitizer and UBSan.
// Same sources as the addon (native/sources.json via CMakeLists.txt), built
// with plain cmake in build-asan/ so the addon build is left alone.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const dir = path.join(root, 'build-asan');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) {
    console.error(`native-tests: cannot run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run('cmake', ['-S', '.', '-B', dir, '-DFLATWALL_SANITIZE=ON', '-DCMAKE_BUILD_TYPE=Debug']);
run('cmake', ['--build', dir, '-j', '2']);
// halt_on_error so any report fails the run; leaks are errors too.
process.env.ASAN_OPTIONS = 'detect_leaks=1:halt_on_error=1:abort_on_error=0';
process.env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
run(path.join(dir, 'flatwall_native_tests'), process.argv.slice(2));
