#!/bin/bash
# End-to-end dataplane test in network namespaces (needs root):
#
#   sender --veth-- [fw: port A | Dataplane | port B] --veth or TAP-- receiver
#
# Usage: native/test/dataplane_e2e.sh [afpacket|tap] [workers] [--direct]
#   afpacket|tap  kind of port B (port A is always AF_PACKET)
#   workers       dataplane worker threads (default 1)
#   --direct      also measure iperf3 over a direct veth pair, for comparison
# Env: FLATWALL_ADDON (the .node to test), IPERF_SECONDS (default 5),
#      TXMODE (ring | sendmmsg, default ring).
# Every name carries this shell's PID; everything is removed on exit.
set -u
KIND_B=${1:-afpacket}
WORKERS=${2:-1}
DIRECT=${3:-}
ID=$$
S=fws$ID R=fwr$ID F=fwf$ID
SA=sa$ID FA=fa$ID FB=fb$ID RB=rb$ID
D1=fwd1$ID D2=fwd2$ID
HERE=$(cd "$(dirname "$0")" && pwd)

cleanup() {
  for ns in $S $R $F $D1 $D2; do ip netns del "$ns" 2>/dev/null; done
}
trap cleanup EXIT INT TERM

set -e
for ns in $S $R $F; do ip netns add $ns; ip netns exec $ns ip link set lo up; done
# The firewall namespace has no addresses and must not talk by itself
# (IPv6 autoconf, DAD, router solicitations) on the bridged ports.
ip netns exec $F sysctl -qw net.ipv6.conf.default.disable_ipv6=1
ip netns exec $F sysctl -qw net.ipv6.conf.all.disable_ipv6=1

ip link add $SA netns $S type veth peer name $FA netns $F
ip netns exec $S ip addr add 10.9.0.1/24 dev $SA
ip netns exec $S ip -6 addr add fd00:9::1/64 dev $SA nodad
ip netns exec $S ip link set $SA up
ip netns exec $F ip link set $FA up
if [ "$KIND_B" = afpacket ]; then
  ip link add $RB netns $R type veth peer name $FB netns $F
  ip netns exec $R ip addr add 10.9.0.2/24 dev $RB
  ip netns exec $R ip -6 addr add fd00:9::2/64 dev $RB nodad
  ip netns exec $R ip link set $RB up
  ip netns exec $F ip link set $FB up
fi
set +e

rc=0
S=$S R=$R FA=$FA FB=$FB KIND_B=$KIND_B WORKERS=$WORKERS \
  ip netns exec $F node "$HERE/dataplane_e2e.js" || rc=$?

if [ "$DIRECT" = --direct ]; then
  ip netns add $D1; ip netns add $D2
  ip link add d1$ID netns $D1 type veth peer name d2$ID netns $D2
  ip netns exec $D1 ip addr add 10.8.0.1/24 dev d1$ID
  ip netns exec $D2 ip addr add 10.8.0.2/24 dev d2$ID
  ip netns exec $D1 ip link set d1$ID up
  ip netns exec $D2 ip link set d2$ID up
  ip netns exec $D2 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  sleep 0.5
  ip netns exec $D1 iperf3 -c 10.8.0.2 -p 5201 -t "${IPERF_SECONDS:-5}" -J |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(JSON.stringify({measure:"direct_veth_tcp",gbps:j.end.sum_received.bits_per_second/1e9,retransmits:j.end.sum_sent.retransmits}))})'
  ping_direct=$(ip netns exec $D1 ping -c 20 -i 0.05 10.8.0.2 | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
  echo "{\"measure\":\"direct_veth_ping_ms\",\"avg\":$ping_direct}"
  wait
fi
exit $rc
