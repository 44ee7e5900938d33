#!/bin/bash
# Rebuild test/corpus: real rule sets written by Debian's firewall tools.
#
# Documentation of how the corpus was made; CI does not run it. Re-runnable:
# as root on Debian 12 with the packages below installed
#   apt-get install --no-install-recommends iptables ipset nftables ufw ferm \
#     shorewall shorewall6 firehol arno-iptables-firewall fail2ban
# (with /usr/sbin/policy-rc.d exiting 101, so no service starts on the host).
#
# Every tool runs in its own throw-away network namespace fwcorpus-<tool>-<n>
# (dummy interfaces eth0, eth1, eth2 with IPv4 and IPv6 addresses) and, within
# `ip netns exec`'s private mount namespace, with a copy of its configuration
# bind-mounted over /etc/<tool>, so neither the host's netfilter state nor its
# files change. Each run is bounded by `timeout 60`. After a run that exits 0
# the namespace's `iptables-save` / `ip6tables-save` output (all tables,
# verbatim, header and footer lines included) is written to
# <tool>/<config>.v4 / .v6 (an empty dump is not written), and `ipset save` to
# <tool>/<config>.ipset when the run made sets. The host's netfilter state
# (iptables-nft, iptables-legacy, nft, ipset) is compared before and after;
# the script fails if it changed. Finally README.md is regenerated.
set -u
export LC_ALL=C _SYSTEMCTL_SKIP_REDIRECT=1 SYSTEMCTL_SKIP_REDIRECT=1
OUT=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/fwcorpus.XXXXXX)
TIMEOUT=60
RUNS=$WORK/runs.tsv     # tool, config, exit status, note
: >"$RUNS"

die() { echo "build.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

# One iptables back end for every run: Debian's default, iptables-nft.
for b in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore; do
  [ "$(readlink -f "$(command -v $b)")" = /usr/sbin/xtables-nft-multi ] ||
    die "$b is not iptables-nft (update-alternatives --set iptables /usr/sbin/iptables-nft)"
done
BACKEND="$(iptables --version)"

host_state() {
  { iptables-nft-save; ip6tables-nft-save; iptables-legacy-save; ip6tables-legacy-save
    nft list ruleset; ipset save; } 2>&1 | grep -vE '^# (Generated|Completed) '
}
host_state >"$WORK/host.before"

NSLIST=()
ns_up() { # name: a namespace with lo, eth0 (uplink), eth1 (LAN), eth2 (DMZ)
  # eth0..eth2 are veths whose peers (up, no addresses) sit in a second
  # throw-away namespace <name>-peer, so the tool's namespace holds nothing else.
  local ns=$1
  ip netns add "$ns" || die "ip netns add $ns"
  NSLIST+=("$ns")
  ip netns add "$ns-peer" || die "ip netns add $ns-peer"
  NSLIST+=("$ns-peer")
  ip -n "$ns" link set lo up
  local i
  for i in 0 1 2; do
    ip -n "$ns" link add eth$i type veth peer name eth$i netns "$ns-peer" || die "veth in $ns"
    ip -n "$ns-peer" link set eth$i up
  done
  ip -n "$ns" addr add 203.0.113.2/24 dev eth0
  ip -n "$ns" addr add 2001:db8:1::2/64 dev eth0 nodad
  ip -n "$ns" addr add 192.168.1.1/24 dev eth1
  ip -n "$ns" addr add fd00:1::1/64 dev eth1 nodad
  ip -n "$ns" addr add 10.0.2.1/24 dev eth2
  ip -n "$ns" addr add fd00:2::1/64 dev eth2 nodad
  for i in 0 1 2; do ip -n "$ns" link set eth$i up; done
  ip -n "$ns" route add default via 203.0.113.1 dev eth0
  ip -n "$ns" -6 route add default via 2001:db8:1::1 dev eth0
}
ns_down() { ip netns del "$1" 2>/dev/null; ip netns del "$1-peer" 2>/dev/null; }
cleanup() {
  local ns
  for ns in "${NSLIST[@]}"; do ip netns del "$ns" 2>/dev/null; done
}
trap cleanup EXIT

dump() { # ns tool config
  local ns=$1 dir=$OUT/$2 f=$OUT/$2/$3
  mkdir -p "$dir"
  rm -f "$f.v4" "$f.v6" "$f.ipset"
  ip netns exec "$ns" iptables-save >"$f.v4" 2>"$WORK/err" || die "iptables-save in $ns: $(cat "$WORK/err")"
  ip netns exec "$ns" ip6tables-save >"$f.v6" 2>"$WORK/err" || die "ip6tables-save in $ns: $(cat "$WORK/err")"
  ip netns exec "$ns" ipset save >"$f.ipset" 2>/dev/null
  local x
  for x in v4 v6 ipset; do [ -s "$f.$x" ] || rm -f "$f.$x"; done
  # a tool that bypassed the nft back end would show up here
  if [ -n "$(ip netns exec "$ns" iptables-legacy-save 2>/dev/null)$(ip netns exec "$ns" ip6tables-legacy-save 2>/dev/null)" ]; then
    die "$2/$3 wrote iptables-legacy rules"
  fi
}

N=0
run() { # tool config script-file [note]: run script in a fresh namespace, dump on success
  local tool=$1 cfg=$2 script=$3 note=${4:-}
  N=$((N + 1))
  local ns=fwcorpus-$tool-$N log=$WORK/$tool-$cfg.log
  ns_up "$ns"
  timeout -k 5 $TIMEOUT ip netns exec "$ns" bash -eu "$script" >"$log" 2>&1
  local rc=$?
  if [ $rc = 0 ]; then
    dump "$ns" "$tool" "$cfg"
    ls "$OUT/$tool/$cfg".v[46] >/dev/null 2>&1 || note="$note (no iptables/ip6tables rules: nothing written)"
    echo "$tool	$cfg	ok	$note" >>"$RUNS"
    echo "ok     $tool/$cfg"
  else
    rm -f "$OUT/$tool/$cfg".{v4,v6,ipset}
    local why
    why=$(grep -v '^+' "$log" | grep -iE '\(nf_tables\): |error|fatal|cannot|not found|unable|you need|not allowed|unknown' |
      grep -vE '^Error occurred at line|^Try ' | head -2 | sed -e "s|$WORK/run-[^/ ]*|\$W|g" -e 's/^ *//' | tr '\t\n' '  ' | cut -c1-240)
    [ $rc = 124 ] && why="timed out after ${TIMEOUT}s"
    echo "$tool	$cfg	exit $rc	${why:-$(tail -1 "$log" | cut -c1-200)}" >>"$RUNS"
    echo "FAILED $tool/$cfg (exit $rc), log: $log"
  fi
  [ -n "${POST:-}" ] && eval "$POST"
  ns_down "$ns"
}

# A per-run script: the body goes to stdin. $W is the run's scratch directory.
mkscript() { # name -> path
  local d=$WORK/run-$1
  mkdir -p "$d"
  { echo "W=$d"; echo 'set -x'; cat; } >"$d/script.sh"
  echo "$d/script.sh"
}

# ---------------------------------------------------------------- ufw
s=$(mkscript ufw-default <<'EOF'
cp -a /etc/ufw "$W/etc-ufw"; mount --bind "$W/etc-ufw" /etc/ufw
cp /etc/default/ufw "$W/default-ufw"; mount --bind "$W/default-ufw" /etc/default/ufw
ufw --force enable
EOF
)
run ufw default "$s" "shipped /etc/ufw, /etc/default/ufw (IPV6=yes); ufw --force enable"

s=$(mkscript ufw-user-rules <<'EOF'
cp -a /etc/ufw "$W/etc-ufw"; mount --bind "$W/etc-ufw" /etc/ufw
cp /etc/default/ufw "$W/default-ufw"; sed -i 's/^IPV6=.*/IPV6=yes/' "$W/default-ufw"
mount --bind "$W/default-ufw" /etc/default/ufw
ufw --force enable
ufw allow 22/tcp
ufw limit ssh
ufw allow from 192.0.2.0/24 to any port 80 proto tcp
ufw deny 23
ufw allow from 2001:db8::/32 to any port 443 proto tcp
ufw status verbose
EOF
)
run ufw user-rules "$s" "IPV6=yes; enable; allow 22/tcp; limit ssh; allow from 192.0.2.0/24 to any port 80 proto tcp; deny 23; allow from 2001:db8::/32 to any port 443 proto tcp"

# ---------------------------------------------------------------- ferm
# ferm prefers the iptables-legacy tools when they are installed (Debian
# #929416), and Debian's iptables package installs them. So that every run uses
# the nft back end, /usr/sbin/xtables-legacy-multi (which all the *-legacy*
# names link to) is bind-mounted, in the run's private mount namespace only,
# with a script that execs the same name with -nft for -legacy.
LEGACY_TO_NFT='printf "#!/bin/bash\nn=\${0##*/}; exec /usr/sbin/\${n/-legacy/-nft} \"\$@\"\n" >"$W/legacy-to-nft"
chmod +x "$W/legacy-to-nft"; mount --bind "$W/legacy-to-nft" /usr/sbin/xtables-legacy-multi'
s=$(mkscript ferm-default <<EOF
$LEGACY_TO_NFT
ferm /etc/ferm/ferm.conf
EOF
)
run ferm default "$s" "shipped /etc/ferm/ferm.conf"
for ex in /usr/share/doc/ferm/examples/*.ferm; do
  name=$(basename "$ex" .ferm)
  s=$(mkscript "ferm-$name" <<EOF
$LEGACY_TO_NFT
ferm $ex
EOF
)
  run ferm "$name" "$s" "/usr/share/doc/ferm/examples/$name.ferm"
done

# ---------------------------------------------------------------- shorewall, shorewall6
# VARDIR (/var/lib/shorewall[6]) and the log go to the run's scratch directory.
shorewall_script() { # tool dir [conf-from-etc]
  mkscript "$1-$(basename "$2")" <<EOF
mkdir -p "\$W/var" "\$W/conf"
mount --bind "\$W/var" /var/lib/$1
cp -a $2/. "\$W/conf/"
for f in "\$W/conf"/*.annotated; do [ -e "\$f" ] && rm "\$f"; done
[ -e "\$W/conf/$1.conf" ] || cp /etc/$1/$1.conf "\$W/conf/"
sed -i -e "s|^STARTUP_LOG=.*|STARTUP_LOG=\$W/startup.log|" -e "s|^LOGFILE=.*|LOGFILE=\$W/messages|" "\$W/conf/$1.conf"
$1 check "\$W/conf"
$1 start "\$W/conf"
$1 status
EOF
}
for tool in shorewall shorewall6; do
  s=$(shorewall_script $tool /etc/$tool)
  run $tool default "$s" "shipped /etc/$tool (no zones/interfaces files)"
  for ex in one-interface two-interfaces three-interfaces Universal; do
    s=$(shorewall_script $tool /usr/share/doc/$tool/examples/$ex)
    run $tool "$ex" "$s" "/usr/share/doc/$tool/examples/$ex"
  done
done

# ---------------------------------------------------------------- firehol
# Debian's firehol is configured (install.config) for the iptables-legacy
# tools, so it gets the same legacy -> nft redirection as ferm.
firehol_script() { # name conf
  mkscript "firehol-$1" <<EOF
$LEGACY_TO_NFT
# spool and run directories (/var/spool/firehol, /run/firehol) in the scratch directory
mkdir -p "\$W/spool" "\$W/run"; mount --bind "\$W/spool" /var/spool; mount --bind "\$W/run" /run
# Debian's /etc/default/firehol has START_FIREHOL=NO, which firehol itself checks
sed 's/^START_FIREHOL=.*/START_FIREHOL=YES/' /etc/default/firehol >"\$W/default-firehol"
mount --bind "\$W/default-firehol" /etc/default/firehol
firehol $2 start
EOF
}
s=$(firehol_script default /etc/firehol/firehol.conf)
run firehol default "$s" "shipped /etc/firehol/firehol.conf"
# FireHOL ships no example configurations in Debian (firehol-doc has the
# manual); firehol/router.conf, kept beside the dumps, is typical of the
# manual's: a host that serves ssh/http and routes a LAN to the internet. It
# is not from the package.
s=$(firehol_script router "$OUT/firehol/router.conf")
run firehol router "$s" "not shipped: firehol/router.conf, written for the corpus in the style of the FireHOL manual"

# ---------------------------------------------------------------- arno-iptables-firewall
arno_script() { # name settings...
  local name=$1; shift
  mkscript "arno-$name" <<EOF
cp -a /etc/arno-iptables-firewall "\$W/etc"; mount --bind "\$W/etc" /etc/arno-iptables-firewall
cat >/etc/arno-iptables-firewall/conf.d/00debconf.conf <<'CONF'
$(printf '%s\n' "$@")
CONF
# its batch files (/var/tmp/aif_*) and locks (/run/lock) in the scratch directory
mkdir -p "\$W/vartmp" "\$W/run/lock"; mount --bind "\$W/vartmp" /var/tmp; mount --bind "\$W/run" /run
/etc/init.d/arno-iptables-firewall start
EOF
}
s=$(arno_script eth0 'EXT_IF="eth0"' 'EXT_IF_DHCP_IP=0' 'OPEN_TCP=""' 'OPEN_UDP=""' 'INT_IF=""' 'NAT=0' 'OPEN_ICMP=0')
run arno-iptables-firewall eth0 "$s" "shipped firewall.conf; conf.d/00debconf.conf: EXT_IF=eth0 (debconf's other answers kept: no INT_IF, NAT=0)"
s=$(arno_script eth0-ipv6-open 'EXT_IF="eth0"' 'EXT_IF_DHCP_IP=0' 'OPEN_TCP="22 80 443"' 'OPEN_UDP="53"' 'INT_IF="eth1"' 'INTERNAL_NET="192.168.1.0/24"' 'NAT=1' 'NAT_INTERNAL_NET="192.168.1.0/24"' 'OPEN_ICMP=1' 'IPV6_SUPPORT=1')
run arno-iptables-firewall eth0-ipv6-open "$s" "shipped firewall.conf; conf.d/00debconf.conf: EXT_IF=eth0 INT_IF=eth1 NAT=1 OPEN_TCP='22 80 443' OPEN_UDP=53 OPEN_ICMP=1 IPV6_SUPPORT=1"

# ---------------------------------------------------------------- fail2ban
# fail2ban-server runs in the namespace with a copy of /etc/fail2ban, its
# socket, pid file and log in the scratch directory, an in-memory database and
# only the sshd jail (backend=polling on an empty log file). The iptables
# actions create their chains on the first ban (actionstart_on_demand), so an
# IPv4 and an IPv6 address are banned before the dump.
f2b_script() { # banaction
  mkscript "fail2ban-$1" <<EOF
cp -a /etc/fail2ban "\$W/conf"; rm -f "\$W/conf"/jail.d/*
: >"\$W/auth.log"
cat >"\$W/conf/fail2ban.local" <<CONF
[Definition]
logtarget = \$W/fail2ban.log
socket = \$W/fail2ban.sock
pidfile = \$W/fail2ban.pid
dbfile = :memory:
CONF
cat >"\$W/conf/jail.local" <<CONF
[DEFAULT]
banaction = $1
banaction_allports = $1
[sshd]
enabled = true
backend = polling
logpath = \$W/auth.log
CONF
fail2ban-client -c "\$W/conf" start
fail2ban-client -c "\$W/conf" status sshd
fail2ban-client -c "\$W/conf" set sshd banip 198.51.100.7
fail2ban-client -c "\$W/conf" set sshd banip 2001:db8::7
for i in \$(seq 50); do
  iptables-save | grep -q 198.51.100.7 || ipset list 2>/dev/null | grep -q 198.51.100.7 && break
  sleep 0.2
done
sleep 1
fail2ban-client -c "\$W/conf" status sshd
EOF
}
for a in iptables-multiport iptables-allports iptables-ipset; do
  s=$(f2b_script $a)
  d=$(dirname "$s")
  # stop the server after the dump (before its namespace goes)
  POST="ip netns exec \$ns fail2ban-client -c $d/conf stop >/dev/null 2>&1; sleep 1; [ -s $d/fail2ban.pid ] && kill \$(cat $d/fail2ban.pid) 2>/dev/null; true"
  run fail2ban "$a" "$s" "jail sshd (backend=polling, empty log), banaction=$a; set sshd banip 198.51.100.7 and 2001:db8::7"
  POST=
done

# ---------------------------------------------------------------- host check
host_state >"$WORK/host.after"
diff -u "$WORK/host.before" "$WORK/host.after" >&2 || die "the host's netfilter state changed"
for ns in $(ip netns list | awk '{print $1}' | grep '^fwcorpus-'); do die "namespace $ns left behind"; done

# ---------------------------------------------------------------- README
ver() { dpkg-query -W -f='${Version}' "$1"; }
{
cat <<EOF
# Rule sets written by Debian's firewall tools

Real \`iptables-save\` / \`ip6tables-save\` output of Debian 12's firewall
front ends, as test fixtures for the parser (\`test/corpus.test.ts\` loads
every \`.v4\` / \`.v6\` file as \`flatwall check --skip-tables\` does).
Files are named like iptables-persistent's (\`<tool>/<config>.v4\`, \`.v6\`);
\`.ipset\` files are the \`ipset save\` of runs that made sets. Dumps are
verbatim (all tables, header and footer lines included). A run whose dump is
empty for a family has no file for it. \`STATUS.md\` says which files flatwall
loads today and where the others stop.

Made by \`build.sh\` (in this directory; CI does not run it) on $(date -u +%Y-%m-%d)
on $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r).
Back end in every run: \`$BACKEND\` (Debian's default, \`iptables-nft\`,
via update-alternatives; the script refuses to run otherwise, and checks that
no run wrote iptables-legacy rules).

Each run: a fresh network namespace \`fwcorpus-<tool>-<n>\` with veth
interfaces (peers in a second throw-away namespace) eth0 (203.0.113.2/24, 2001:db8:1::2/64, default routes via .1 / ::1),
eth1 (192.168.1.1/24, fd00:1::1/64) and eth2 (10.0.2.1/24, fd00:2::1/64);
the tool's commands (below) under \`timeout 60 ip netns exec <ns> bash -eu\`, with a
copy of its configuration bind-mounted over /etc/<tool> in that private mount
namespace; if they exit 0, \`ip netns exec <ns> iptables-save\`,
\`ip6tables-save\` and \`ipset save\`; then \`ip netns del\`. The host's
\`iptables-nft-save\`, \`ip6tables-nft-save\`, \`iptables-legacy-save\`,
\`ip6tables-legacy-save\`, \`nft list ruleset\` and \`ipset save\` were
identical before and after.

## Packages

| package | version |
|---|---|
EOF
for p in iptables ipset ufw ferm shorewall shorewall6 firehol arno-iptables-firewall fail2ban; do
  echo "| $p | $(ver $p) |"
done
cat <<'EOF'

## Runs

| tool | config | result | source / notes |
|---|---|---|---|
EOF
while IFS='	' read -r tool cfg rc note; do
  echo "| $tool | $cfg | $rc | ${note//|/\\|} |"
done <"$RUNS"
cat <<'EOF'

Notes on the runs:

- shorewall, shorewall6 `default`: Debian ships /etc/shorewall[6] without
  zones, interfaces, policy or rules files, so the shipped configuration does
  not start until it is written; the four samples each package ships do.
- ferm examples: `antiddos.ferm` has a syntax error for ferm 2.5.1;
  `mailserver.ferm` names the service `imap3`, which Debian's
  /etc/services (netbase) does not have; `resolve.ferm` needs Net::DNS
  (libnet-dns-perl, not installed) and DNS, which the namespace does not have;
  `ebtables.ferm`: ebtables-nft does not accept ferm's restore file;
  `arptables.ferm` loads, but makes arptables rules only (no file).
- ferm and firehol call the iptables-legacy tools when installed (ferm:
  Debian #929416; firehol: its install.config), so on a Debian 12 machine
  their rules normally go to the legacy back end. Here, to keep one back end,
  the legacy names ran the nft tools (see build.sh); the dumps are
  `iptables-nft-save` output like all the others.
- fail2ban: fail2ban-server ran in the namespace; its iptables actions create
  their chains on the first ban, and an IPv6 address (2001:db8::7) was
  banned as well as 198.51.100.7 so that the .v6 files have the chains too.
  After the dump: `fail2ban-client -c $W/conf stop` in the namespace (and a
  kill of the pid in its pid file, should it still run).
- The dates in the dumps' header lines are the build machine's clock.

`test/corpus.test.ts` checks that each file loads or fails as recorded in its
`KNOWN_FAILING`; `node test/corpus/status.js` (after `npx tsc -p .`)
prints that list and rewrites STATUS.md.

The exact commands of each run (`W` is the run's scratch directory):

EOF
for d in "$WORK"/run-*; do
  echo "### ${d##*/run-}"
  echo
  echo '```sh'
  sed -e "1d" -e "/^set -x$/d" -e "s|$WORK|\$WORK|g" -e "s|$OUT|test/corpus|g" "$d/script.sh"
  echo '```'
  echo
done
cat <<'EOF'
## Files

Rules are `-A` lines; matches are the `-m` modules and targets the `-j`
targets other than the file's user chains (jumps to those are counted in
"jumps to user chains"; `-g` gotos too), each module or target listed once per file.

| file | tables | rules | user chains | jumps to user chains | matches (-m) | targets (-j) |
|---|---|---|---|---|---|---|
EOF
(cd "$OUT" && for f in */*.v4 */*.v6; do
  [ -e "$f" ] || continue
  tables=$(grep '^\*' "$f" | tr -d '*' | tr '\n' ' ' | sed 's/ $//')
  rules=$(grep -c '^-A ' "$f")
  mods=$(grep '^-A ' "$f" | grep -oE '(^| )-m [^ ]+' | awk '{print $2}' | sort -u | tr '\n' ' ' | sed 's/ $//')
  grep -E '^:[^ ]+ - ' "$f" | cut -d' ' -f1 | cut -c2- | sort -u >"$WORK/userchains"
  nuser=$(wc -l <"$WORK/userchains")
  grep '^-A ' "$f" | grep -oE '(^| )-[jg] [^ ]+' | awk '{print $2}' >"$WORK/targets"
  jumps=$(grep -cxFf "$WORK/userchains" "$WORK/targets")
  tgts=$(grep -vxFf "$WORK/userchains" "$WORK/targets" | sort -u | tr '\n' ' ' | sed 's/ $//')
  echo "| $f | $tables | $rules | $nuser | ${jumps:-0} | $mods | $tgts |"
done)
} >"$OUT/README.md"

echo "wrote $OUT/README.md; scratch in $WORK"
