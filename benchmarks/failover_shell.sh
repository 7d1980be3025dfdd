#!/usr/bin/env bash
# The failover drill as a plain shell sequence: the same commands the flow runs, nothing else.
# Baseline for benchmarks/failover.py. Inputs come from the environment (set by that script).
# Prints "TIMING name=seconds" lines and "LOST bytes".
set -euo pipefail
: "${NS:?}" "${KEY:?}" "${KNOWN_HOSTS:?}" "${A:?}" "${B:?}" "${A_DOMAIN:?}" "${URI:?}" "${RES:?}" "${DEV:?}" "${MNT:?}"
FILES=${FILES:-5}; MIB=${MIB:-20}
ssh_opts=(-i "$KEY" -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes
          -o ConnectTimeout=3 -o LogLevel=ERROR)
on() { local host=$1; shift; ip netns exec "$NS" ssh "${ssh_opts[@]}" "root@$host" "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }

dir="$MNT/shell-drill"
td=$(now)
on "$A" "rm -rf $MNT/drill-* $dir; mkdir -p $dir"
for i in $(seq 1 "$FILES"); do on "$A" "dd if=/dev/urandom of=$dir/f$i.bin bs=1M count=$MIB status=none"; done
on "$A" "cd $dir && sha256sum f*.bin > MANIFEST.sha256 && sync"
echo "TIMING dataset=$(since "$td")"

t0=$(now)
virsh -q -c "$URI" destroy "$A_DOMAIN" >/dev/null
while on "$B" "grep -q 'cs:Connected' /proc/drbd"; do sleep 0.2; done
echo "TIMING detection=$(since "$t0")"
on "$B" "drbdadm primary $RES && mkdir -p $MNT && mount $DEV $MNT"
if on "$B" "cd $dir && sha256sum --quiet -c MANIFEST.sha256"; then echo "LOST 0"; else echo "LOST unknown"; fi
echo "TIMING rto=$(since "$t0")"

t1=$(now)
virsh -q -c "$URI" start "$A_DOMAIN" >/dev/null
until on "$A" true 2>/dev/null; do sleep 1; done
echo "TIMING returned=$(since "$t1")"
t2=$(now)
on "$A" "modprobe drbd && drbdadm up $RES"
until on "$B" "grep -q 'cs:Connected.*ds:UpToDate/UpToDate' /proc/drbd"; do sleep 1; done
echo "TIMING resync=$(since "$t2")"
t3=$(now)
on "$B" "cd $dir && sha256sum --quiet -c MANIFEST.sha256"
on "$B" "umount $MNT && drbdadm secondary $RES"
on "$A" "drbdadm primary $RES && mount $DEV $MNT && cd $dir && sha256sum --quiet -c MANIFEST.sha256"
echo "TIMING switchback=$(since "$t3")"
echo "TIMING total=$(since "$t0")"
