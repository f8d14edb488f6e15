#!/usr/bin/env bash
# Integration: `pinata disk info` and `pinata disk compact` on a Docker.qcow2 written and
# discarded by QEMU's own tools (qemu-io), checked with qemu-img. No VM is started.
source "$(dirname "$0")/../e2e/lib.sh"
IMG="$PINATA_HOME/Docker.qcow2"
mkdir -p "$PINATA_HOME"

expect_exit 1 "info without a disk says so" "$PINATA" disk info
check "... naming the path" contains "$out" "no data disk at $IMG"
expect_exit 2 "an unknown subcommand is refused" "$PINATA" disk shrink

qemu-img create -q -f qcow2 "$IMG" 1G
qemu-io -f qcow2 -c "write -P 0xab 0 256M" -c "write -P 0xcd 900M 4M" "$IMG" >/dev/null
qemu-io -f qcow2 -c "discard 0 252M" "$IMG" >/dev/null
cp "$IMG" "$WORK/before.qcow2"
size_before=$(stat -c %s "$IMG")

expect_exit 0 "pinata disk info" "$PINATA" disk info
check "... shows the virtual size" contains "$out" "virtual size: 1.0 GiB"
check "... and what compact would give back" contains "$out" "reclaimable:"
expect_exit 0 "pinata disk info --json" "$PINATA" disk info --json
json=$out
check "... is JSON" python3 -c "import json,sys; json.loads(sys.argv[1])" "$json"
reclaimable=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['reclaimable'])" "$json")
check "... with most of the discarded 252 MiB reclaimable" test "$reclaimable" -gt $((200 << 20))

# A running pinatad (its lock held) means QEMU has the image: compact refuses.
exec {lock}>"$PINATA_HOME/pinatad.lock"
flock "$lock"
expect_exit 1 "compact while pinata runs is refused" "$PINATA" disk compact
check "... saying to stop first" contains "$out" "pinata stop"
exec {lock}>&-

expect_exit 0 "pinata disk compact" "$PINATA" disk compact
size_after=$(stat -c %s "$IMG")
check "the file shrank ($size_before -> $size_after bytes)" test "$size_after" -lt $((size_before / 10))
check "qemu-img check is clean" qemu-img check -q "$IMG"
check "the data is unchanged (qemu-img compare)" qemu-img compare -q "$WORK/before.qcow2" "$IMG"

# While the VM runs pinata-blk has the image open: `pinata disk compact` asks it, over its
# control socket, to compact online. Same starting image as above, a real pinata-blk (no VM).
cp --sparse=always "$WORK/before.qcow2" "$IMG"
exec {lock}>"$PINATA_HOME/pinatad.lock"
flock "$lock"
"$BUILD/src/blk/pinata-blk" --socket "$WORK/vhost-blk.sock" --image "$IMG" --format qcow2 \
  --control "$PINATA_HOME/blk-control.sock" 2>"$WORK/blk.log" &
blk=$!
for _ in $(seq 1 100); do [ -S "$PINATA_HOME/blk-control.sock" ] && break; sleep 0.05; done
expect_exit 0 "pinata disk compact while running (through pinata-blk)" "$PINATA" disk compact
check "... says it compacted while running" contains "$out" "while running"
size_online=$(stat -c %s "$IMG")
check "... and the file shrank ($size_before -> $size_online bytes)" test "$size_online" -lt $((size_before / 10))
kill -TERM $blk; wait $blk || true
exec {lock}>&-
check "after pinata-blk exits, qemu-img check is clean" qemu-img check -q "$IMG"
check "... and the data is unchanged" qemu-img compare -q "$WORK/before.qcow2" "$IMG"

printf 'QFI\xfb\0\0\0\x09garbage' | dd of="$IMG" conv=notrunc status=none
expect_exit 1 "a corrupt image gives an error" "$PINATA" disk info
check "... that says what is wrong" contains "$out" "Docker.qcow2"
finish
