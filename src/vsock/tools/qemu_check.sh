#!/usr/bin/env bash
# Manual end-to-end check of pinata-vsock against a real Linux guest under QEMU (TCG).
#
#   src/vsock/tools/qemu_check.sh PINATA_VSOCK VSOCK_TOOL VMLINUX INITRD [WORKDIR]
#
# INITRD's /init must run the guest half (see docs/protocols/vsock.md, "Real-guest check"):
# servers on guest ports 1234 (echo), 5000 (sink), 5001 (source); clients to host ports 6000
# (send), 6001 (recv), 7777 (nothing there); then it waits for a connection on 9999 and
# powers off. This script runs the host half and prints every RESULT line.
set -euo pipefail
VS=$1 TOOL=$2 VMLINUX=$3 INITRD=$4 W=${5:-/tmp/vs}
N=104857600
rm -rf "$W"; mkdir -p "$W/dir"
KHZ=$(awk -F: '/cpu MHz/ {printf "%d", $2*1000; exit}' /proc/cpuinfo)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$VS" --socket "$W/vhost.sock" --dir "$W/dir" --cid 3 --forward 1234 --forwards '5001' \
    --verbose >"$W/backend.log" 2>&1 &
pids+=($!)
"$TOOL" serve "unix:$W/dir/00000002.00001770" sink $N >"$W/host-sink.log" 2>&1 &
pids+=($!)
"$TOOL" serve "unix:$W/dir/00000002.00001771" source $N >"$W/host-source.log" 2>&1 &
pids+=($!)
sleep 0.5
t0=$(date +%s.%N)
qemu-system-x86_64 -M microvm,memory-backend=mem \
    -object memory-backend-memfd,id=mem,size=1G,share=on -accel tcg -m 1G -smp 2 \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -kernel "$VMLINUX" -initrd "$INITRD" \
    -append "console=ttyS0 panic=-1 quiet tsc_early_khz=$KHZ" \
    -chardev socket,id=vs,path="$W/vhost.sock" -device vhost-user-vsock-device,chardev=vs \
    >"$W/console.log" 2>&1 &
QEMU=$!
pids+=($QEMU)
wait_for() {  # wait_for PATTERN SECONDS
  for _ in $(seq $(($2 * 10))); do grep -q "$1" "$W/console.log" && return 0; sleep 0.1; done
  echo "timeout waiting for '$1'"; cat "$W/console.log"; exit 1
}
wait_for "VSOCKTEST: listening" 120
echo "guest listening after $(echo "$(date +%s.%N) - $t0" | bc) s"
wait_for "VSOCKTEST: guest-side done" 900
echo "--- host -> guest"
"$TOOL" client "unix:$W/dir/connect@3.1234" hello
"$TOOL" client "unix:$W/dir/00000003.000004d2" echo 1048576
"$TOOL" client "unix:$W/dir/connect@3.5000" send $N
"$TOOL" client "unix:$W/dir/00000003.00001389" recv $N
"$TOOL" client "unix:$W/dir/connect@4.1234" hello || true   # wrong CID: closed
"$TOOL" client "unix:$W/dir/connect@3.4321" hello || true   # no guest listener: closed
sleep 2
"$TOOL" client "unix:$W/dir/connect@3.9999" hello >/dev/null || true
echo "--- shutdown"
ts=$(date +%s.%N)
for _ in $(seq 600); do kill -0 $QEMU 2>/dev/null || break; sleep 0.1; done
if kill -0 $QEMU 2>/dev/null; then echo "QEMU did not exit"; exit 1; fi
echo "QEMU exited $(echo "$(date +%s.%N) - $ts" | bc) s after the poweroff request"
echo "--- guest console"; grep -E "RESULT|VSOCKTEST" "$W/console.log"
echo "--- host servers"; cat "$W/host-sink.log" "$W/host-source.log"
echo "--- backend"; grep -cE "GET_VRING_BASE" "$W/backend.log" | sed 's/^/GET_VRING_BASE requests: /'
grep -vE "pinata-vsock: (SET_|GET_)|host -> guest|guest port" "$W/backend.log" | tail -20
