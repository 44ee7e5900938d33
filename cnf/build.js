#!/usr/bin/env node
// Builds the flatwall CNF image: a container that runs `flatwall run` as a
// container network function, from this checkout's build (no registry, no
// base image: FROM scratch).
//
//   npm run image [-- --tag NAME] [--rootfs DIR] [--tool podman|buildah|docker]
//
// The image holds only what the firewall needs at run time:
//   /usr/bin/node and the shared libraries it and the addon link (from ldd),
//   /opt/flatwall/{package.json, dist/src, build/Release/flatwall_native.node},
//   /opt/flatwall/node_modules with the runtime dependencies only (their
//   closure from package.json "dependencies", minus the build-time ones
//   below), and /etc/flatwall with the default rule file.
// The image runs as a non-root user (uid/gid 65532, the Containerfile's
// USER) from a read-only root: the only writable places are the declared
// volumes /run/flatwall (the API socket) and /var/lib/flatwall (snapshots),
// created owned by that user. Such a process keeps the runtime's added
// capabilities across execve only through the ambient set (podman 4.3 sets
// it for a non-root user; containerd and CRI-O, so Kubernetes, do not) or
// file capabilities, so node gets file capabilities
// cap_net_raw,cap_net_admin+p (setcap, from libcap2-bin): permitted but not
// effective, raised by the addon only while it opens the ports
// (native/io/net_caps.h), and only if the runtime's bounding set holds them
// (--cap-add / securityContext.capabilities.add). Setting them needs root
// (CAP_SETFCAP) on the building machine.
// With --rootfs DIR it only assembles the tree (no image tool needed).
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');

const root = path.join(__dirname, '..');
// Dependencies used only to build the addon, never loaded at run time.
const BUILD_ONLY = new Set(['cmake-js', 'node-addon-api']);
// The image's user and what it may do (cnf/README.md).
const UID = 65532;
const FILE_CAPS = 'cap_net_raw,cap_net_admin+p';

function usage(msg) {
  process.stderr.write(`cnf/build.js: ${msg}\nusage: npm run image [-- --tag NAME] [--rootfs DIR] [--tool podman|buildah|docker]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { tag: 'localhost/flatwall:latest', rootfs: undefined, tool: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === '--tag') o.tag = next();
    else if (a === '--rootfs') o.rootfs = path.resolve(next());
    else if (a === '--tool') o.tool = next();
    else if (a === '-h' || a === '--help') usage('help');
    else usage(`unknown option ${a}`);
  }
  return o;
}

// The shared objects `file` needs, as absolute paths, from ldd's output.
function sharedLibs(file) {
  const out = execFileSync('ldd', [file], { encoding: 'utf8' });
  const libs = [];
  for (const line of out.split('\n')) {
    const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m) libs.push(m[1]);
  }
  return libs;
}

// Copies a file keeping its absolute path under `dest`; symlinked libraries
// are copied as the file they point to, under the name asked for.
function copyAbs(file, dest) {
  const to = path.join(dest, file);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(fs.realpathSync(file), to);
  fs.chmodSync(to, fs.statSync(fs.realpathSync(file)).mode & 0o777);
}

// Runtime dependency closure: package.json dependencies minus BUILD_ONLY,
// then their own dependencies, resolved from this checkout's node_modules.
function runtimePackages() {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const todo = Object.keys(pkg.dependencies ?? {}).filter((d) => !BUILD_ONLY.has(d));
  const seen = new Set();
  while (todo.length) {
    const name = todo.pop();
    if (seen.has(name)) continue;
    const dir = path.join(root, 'node_modules', name);
    if (!fs.existsSync(path.join(dir, 'package.json'))) throw new Error(`runtime dependency ${name} is not installed (run npm ci)`);
    seen.add(name);
    const p = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    todo.push(...Object.keys(p.dependencies ?? {}));
  }
  return [...seen].sort();
}

function assemble(rootfs) {
  const addon = path.join(root, 'build', 'Release', 'flatwall_native.node');
  const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');
  for (const f of [addon, cli]) if (!fs.existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: run npm ci (or npm run build) first`);
  fs.rmSync(rootfs, { recursive: true, force: true });

  // 1. Node and every shared library it or the addon needs (plus the loader).
  const node = process.execPath;
  copyAbs(node, rootfs);
  if (node !== '/usr/bin/node') {
    fs.mkdirSync(path.join(rootfs, 'usr/bin'), { recursive: true });
    fs.symlinkSync(node, path.join(rootfs, 'usr/bin/node'));
  }
  const libs = new Set([...sharedLibs(node), ...sharedLibs(addon)]);
  for (const lib of libs) copyAbs(lib, rootfs);

  // 2. flatwall itself: compiled JS, the addon, runtime dependencies.
  const app = path.join(rootfs, 'opt/flatwall');
  fs.mkdirSync(path.join(app, 'build/Release'), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(app, 'package.json'));
  fs.copyFileSync(addon, path.join(app, 'build/Release/flatwall_native.node'));
  fs.cpSync(path.join(root, 'dist', 'src'), path.join(app, 'dist/src'), {
    recursive: true,
    filter: (src) => !/\.test\.js(\.map)?$/.test(src),
  });
  const pkgs = runtimePackages();
  for (const name of pkgs) fs.cpSync(path.join(root, 'node_modules', name), path.join(app, 'node_modules', name), { recursive: true });

  // 3. A default rule set (fail closed: only ARP/NDP pass until the operator
  //    mounts their own), the API socket directory and a writable /tmp.
  fs.mkdirSync(path.join(rootfs, 'etc/flatwall'), { recursive: true });
  fs.writeFileSync(path.join(rootfs, 'etc/flatwall/rules.v4'),
    '# Default flatwall CNF rules: mount your own iptables-save file over this one.\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n');
  // The parents of the volumes, root's; the volumes themselves are created
  // owned by the image's user by the Containerfile (COPY --chown).
  for (const d of ['run', 'var/lib']) fs.mkdirSync(path.join(rootfs, d), { recursive: true, mode: 0o755 });
  fs.mkdirSync(path.join(rootfs, 'tmp'), { recursive: true });
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);

  // 4. CAP_NET_RAW and CAP_NET_ADMIN for a non-root user: file capabilities
  //    on node itself (the copy, not a symlink).
  const nodeInImage = path.join(rootfs, node);
  const sc = spawnSync('setcap', [FILE_CAPS, nodeInImage], { encoding: 'utf8' });
  if (sc.error || sc.status !== 0) {
    const why = sc.error ? `${sc.error.code === 'ENOENT' ? 'setcap not found (apt-get install libcap2-bin)' : sc.error.message}` : sc.stderr.trim();
    throw new Error(`cannot give ${node} in the image the file capabilities ${FILE_CAPS}: ${why} (needs root)`);
  }
  return { libs: [...libs], pkgs };
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const stage = o.rootfs ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'flatwall-image-'));
  const rootfs = o.rootfs ?? path.join(stage, 'rootfs');
  try {
    process.stderr.write(`assembling ${rootfs}\n`);
    const { libs, pkgs } = assemble(rootfs);
    process.stderr.write(`  node ${process.version}, ${libs.length} shared libraries, runtime packages: ${pkgs.join(' ')}\n`);
    if (o.rootfs) return 0;
    // dist exists by now (assemble checked): use the lab's own tool probe.
    const { haveCommand } = require(path.join(root, 'dist', 'src', 'lab', 'tools'));
    const tool = o.tool ?? ['podman', 'buildah', 'docker'].find((t) => haveCommand(t));
    if (!tool) throw new Error('no image tool found (podman, buildah or docker); use --rootfs DIR to assemble the tree only');
    // One layer, no intermediate images left behind as build cache.
  const args = tool === 'buildah' ? ['bud', '--layers=false'] : tool === 'podman' ? ['build', '--layers=false'] : ['build'];
    // The volumes' source: an empty directory (COPY --chown makes them the user's).
    fs.mkdirSync(path.join(stage, 'volume'));
    args.push('--build-arg', `UID=${UID}`);
    args.push('-f', path.join(__dirname, 'Containerfile'), '-t', o.tag, '--label', `org.opencontainers.image.version=${require(path.join(root, 'package.json')).version}`, stage);
    process.stderr.write(`${tool} ${args.join(' ')}\n`);
    const r = spawnSync(tool, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`${tool} build failed (exit ${r.status ?? r.signal})`);
    process.stdout.write(`${o.tag}\n`);
    return 0;
  } finally {
    if (stage) fs.rmSync(stage, { recursive: true, force: true });
  }
}

try {
  process.exitCode = main();
} catch (err) {
  process.stderr.write(`cnf/build.js: ${err.message}\n`);
  process.exitCode = 1;
}
