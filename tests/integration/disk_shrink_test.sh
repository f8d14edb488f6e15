#!/usr/bin/env bash
# Integration (issue 5, acceptance 4): the data disk shrinks when the guest deletes data.
# In a real VM: 2 GiB is written to /var/lib/docker (an image layer's worth of files, written
# by a container), then deleted. Nothing else is done by hand: the guest's periodic fstrim
# (pinata.trim=5 here, 300 s by default) discards the freed blocks, pinata-blk punches holes and
# then compacts the image online once the disk is idle. Docker.qcow2 must come back to within
# 10% + 64 MiB of the data the image still holds, and of its size before the 2 GiB.
source "$(dirname "$0")/../e2e/lib.sh"
MiB=$((1 << 20))

mkdir -p "$PINATA_HOME"
printf 'trim=5\n' >"$PINATA_HOME/settings"
expect_exit 0 "pinata start" "$PINATA" start

bb="$WORK/bb"
mkdir -p "$bb"
cp "$(command -v busybox)" "$bb/busybox"
printf 'FROM scratch\nADD busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$bb/Dockerfile"
expect_exit 0 "build a busybox image" docker build -q -t pinata-shrink-bb "$bb"

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$1'])" "$2"; }
info() { "$PINATA" disk info --json; }

# Settle first: whatever the first boot freed is trimmed and compacted away.
sleep 20
base=$(info)
base_file=$(field file_size "$base")
echo "# before: file $((base_file / MiB)) MiB, used $(($(field used "$base") / MiB)) MiB"

expect_exit 0 "a container writes 2 GiB into its layer" \
  docker run --name writer pinata-shrink-bb sh -c \
  'for i in 1 2 3 4; do dd if=/dev/zero of=/blob$i bs=1M count=512 2>/dev/null || exit 1; done; sync; du -sm /blob*'
full=$(info)
full_file=$(field file_size "$full")
echo "# full: file $((full_file / MiB)) MiB, used $(($(field used "$full") / MiB)) MiB"
check "the image grew by about 2 GiB ($((base_file / MiB)) -> $((full_file / MiB)) MiB)" \
  test "$full_file" -ge $((base_file + 2000 * MiB))

expect_exit 0 "delete it (docker rm)" docker rm writer
start=$(date +%s)
echo "# deleted at $(date -u +%H:%M:%S)"
ok=0
for _ in $(seq 1 90); do
  now=$(info)
  file=$(field file_size "$now") used=$(field used "$now") alloc=$(field allocated "$now")
  if [ "$file" -le $((used + used / 10 + 64 * MiB)) ] && [ "$file" -le $((base_file + base_file / 10 + 64 * MiB)) ]; then
    ok=1
    break
  fi
  sleep 2
done
echo "# after $(($(date +%s) - start)) s: file $((file / MiB)) MiB, used $((used / MiB)) MiB, allocated $((alloc / MiB)) MiB"
check "the file shrank to within 10% + 64 MiB of what the image holds (file $((file / MiB)) MiB, used $((used / MiB)) MiB)" \
  test "$ok" = 1
check "... and of its size before the 2 GiB (file $((file / MiB)) MiB, before $((base_file / MiB)) MiB)" \
  test "$file" -le $((base_file + base_file / 10 + 64 * MiB))
check "the host file system holds no more than that either (allocated $((alloc / MiB)) MiB)" \
  test "$alloc" -le $((used + used / 10 + 64 * MiB))
grep -E "online compaction|compacted from" "$PINATA_HOME/log/pinatad.log" | sed 's/^/# /' || true
"$PINATA" logs --console 2>/dev/null | tr -d '\r' | grep "fstrim" | sed 's/^/# /' || true
contains "$(cat "$PINATA_HOME/log/pinatad.log")" "online compaction" && compacted=1 || compacted=0
check "pinata-blk compacted online (its log says so)" test "$compacted" = 1
check "the guest's fstrim did the trimming (console log)" \
  contains "$("$PINATA" logs --console 2>/dev/null | tr -d '\r')" "fstrim /var/lib/docker"

# The disk still works and keeps its data across a restart.
expect_exit 0 "a container still runs" docker run --rm pinata-shrink-bb echo alive
expect_exit 0 "pinata stop" "$PINATA" stop
check "qemu-img check is clean after the online compaction" qemu-img check -q "$PINATA_HOME/Docker.qcow2"
expect_exit 0 "pinata start again" "$PINATA" start
expect_exit 0 "the image is still there" docker run --rm pinata-shrink-bb echo alive
finish
