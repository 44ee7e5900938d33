#!/usr/bin/env node
// `npm test`: the native unit tests under sanitizers, the libFuzzer targets
// for 30 s each (scripts/fuzz.js --test: any crash, leak or UBSan report
// fails; without clang it skips, under CI=1 it fails), then every JS/TS
// test (unit tests beside the code in src/, integration and kernel tests
// in test/), the control-plane tests again with every text reload on the
// build thread, then the forwarding e2e tests again with the ports on AF_XDP
// (FLATWALL_E2E_IO=afxdp, test/e2e/harness.ts): the same checks on both I/O
// paths.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
function step(name, cmd, args, env = {}) {
  process.stderr.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    process.stderr.write(`\n== ${name} FAILED (exit ${r.status ?? r.signal})\n`);
    process.exit(1);
  }
}

step('native unit tests (ASan + UBSan)', process.execPath, [path.join(__dirname, 'native-tests.js')]);
step('fuzz targets (libFuzzer + ASan + UBSan, 30 s each)', process.execPath, [path.join(__dirname, 'fuzz.js'), '--test']);
step('TypeScript tests', process.execPath, ['--test', '--test-concurrency=1', 'dist/src', 'dist/test']);
// Every e2e test whose lab forwards through `flatwall run` or the Firewall
// host (not the TAP, image, burst or multi-worker labs, which stay on their
// own I/O: test/e2e/harness.ts ioArgs).
const AFXDP_E2E = ['lab', 'counters', 'flows', 'conntrack-kernel', 'conntrack-api', 'host-mode', 'health', 'raw-kernel',
  'extensions-kernel', 'corpus-kernel', 'api', 'api-limits'].map((t) => `dist/test/e2e/${t}.test.js`);
// Text reloads of 1 MiB or more run on the build thread (src/control/build-thread.ts);
// the test rule files are small, so the control-plane tests run again with
// every text reload sent there (and its model read back on demand).
const BUILD_THREAD = ['dist/src/control', ...['api', 'counters', 'rules-cache', 'standby', 'tap-reload', 'corpus-kernel'].map((t) => `dist/test/e2e/${t}.test.js`)];
step('control-plane tests with every text reload on the build thread', process.execPath, ['--test', '--test-concurrency=1', ...BUILD_THREAD], { FLATWALL_BUILD_THREAD_MIN_BYTES: '0' });
// The build thread takes large texts to the addon's text compiler first
// (src/rules/text-fast-path.ts); its tests again with that off cover the
// reference parser on the thread.
step('build-thread tests with the text fast path off', process.execPath, ['--test', '--test-concurrency=1', 'dist/src/control/build-thread.test.js'], { FLATWALL_TEXT_FAST_PATH: '0' });
step('e2e tests over AF_XDP', process.execPath, ['--test', '--test-concurrency=1', ...AFXDP_E2E], { FLATWALL_E2E_IO: 'afxdp' });
