#!/usr/bin/env bash
# Manual end-to-end check of pinata-blk against a real Linux guest under QEMU (TCG).
#
#   src/blk/tools/qemu_check.sh PINATA_BLK BLK_TOOL VMLINUX GUEST_BASE_DIR [WORKDIR]
#
# GUEST_BASE_DIR is a guest base from guest/build.sh (its modules/ and modules.list are used);
# BLK_TOOL is the static blk-tool (src/blk/tools/blk_tool.cc). The script builds a throwaway
# busybox initramfs whose /init runs the guest half selected by "blkcheck=MODE" on the kernel
# command line, and boots it against 1 GiB qcow2 images made by qemu-img:
#   1. first   (microvm, vhost-user-blk): sysfs view, 64 MiB pattern write + verify,
#              BLKDISCARD and BLKZEROOUT of patterned ranges, the cache mode switched to write
#              through and back, 256 MiB sequential write + verify (throughput).
#      Host: qemu-img check, then the image converted to raw and the patterns verified.
#   2. second  (microvm, the same pinata-blk process: the next frontend): patterns still there,
#              mkfs.ext4 (which discards the whole disk) + mount + 200 MiB file + rm + fstrim.
#              Host: the file's allocation, SIGTERM pinata-blk, qemu-img check, the dirty bit.
#   3. ro      (microvm, pinata-blk --read-only): ro=1, a write is refused, reads work.
#   4. mq      (q35, -smp 2, vhost-user-blk-pci num-queues=2): two queues in the guest, two
#              writers at once.
#   5. bench   (microvm with modern virtio-mmio: qemu-storage-daemon refuses legacy devices)
#              twice on fresh 1 GiB qcow2 images, the same guest workload (256 MiB
#              sequential O_DIRECT write and read, 3000 random 4 KiB writes and reads) against
#              pinata-blk and against qemu-storage-daemon's vhost-user-blk export: a ratio
#              measured in one run (TCG: the guest's CPU time is in both numbers); BENCH_ROUNDS
#              rounds (default 3), medians printed.
# Every guest result is a "BLKCHECK:" or "RESULT" line on the console; the script prints them.
set -euo pipefail
BLK=$1 TOOL=$2 VMLINUX=$3 BASE=$4 W=${5:-/tmp/blk-check}
ROUNDS=${BENCH_ROUNDS:-3}
rm -rf "$W"; mkdir -p "$W"
KHZ=$(awk -F: '/cpu MHz/ {printf "%d", $2*1000; exit}' /proc/cpuinfo)
IMG=$W/disk.qcow2
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# ---- initramfs
R=$W/initramfs
mkdir -p "$R"/{bin,dev,proc,sys,mnt,lib/modules}
cp /bin/busybox "$R/bin/busybox"  # busybox-static
cp "$TOOL" "$R/bin/blk-tool"
# busybox-static has no mkfs: the host's mke2fs and its libraries.
for f in /usr/sbin/mke2fs $(ldd /usr/sbin/mke2fs | grep -o '/[^ ]*'); do
  mkdir -p "$R$(dirname "$f")"; cp -L "$f" "$R$f"
done
mkdir -p "$R/etc"; cp /etc/mke2fs.conf "$R/etc/"
want='virtio_ring virtio virtio_mmio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk crc32c_generic crc16 mbcache jbd2 ext4'
: >"$R/modules.order"
while read -r m; do
  name=$(basename "$m" .ko)
  for w in $want; do
    if [ "$name" = "$w" ]; then cp "$BASE/modules/$m" "$R/lib/modules/"; echo "$name" >>"$R/modules.order"; fi
  done
done <"$BASE/modules.list"
cat >"$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for pass in 1 2; do for m in $(cat /modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done; done
say() { echo "BLKCHECK: $*"; }
mode=$(sed -n 's/.*blkcheck=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
[ -b /dev/vda ] || { say "no /dev/vda"; poweroff -f; }
q=/sys/block/vda
say "mode $mode, disk up at $(cut -d' ' -f1 /proc/uptime) s"
say "serial=$(cat $q/serial) size=$(cat $q/size) ro=$(cat $q/ro) cache_type=$(cat $q/cache_type) queues=$(ls $q/mq | wc -l)"
say "logical=$(cat $q/queue/logical_block_size) physical=$(cat $q/queue/physical_block_size) min_io=$(cat $q/queue/minimum_io_size) discard_granularity=$(cat $q/queue/discard_granularity) discard_max=$(cat $q/queue/discard_max_bytes) write_zeroes_max=$(cat $q/queue/write_zeroes_max_bytes) max_segments=$(cat $q/queue/max_segments) max_discard_segments=$(cat $q/queue/max_discard_segments)"
case "$mode" in
first)
  blk-tool write /dev/vda 1M 64M 1
  blk-tool verify /dev/vda 1M 64M 1
  blk-tool write /dev/vda 100M 8M 2
  blk-tool discard /dev/vda 100M 4M
  blk-tool zeros /dev/vda 100M 4M
  blk-tool verify /dev/vda 104M 4M 2
  blk-tool write /dev/vda 120M 8M 3
  blk-tool zeroout /dev/vda 121M 2M
  blk-tool zeros /dev/vda 121M 2M
  blk-tool verify /dev/vda 120M 1M 3
  blk-tool verify /dev/vda 123M 5M 3
  echo "write through" >$q/cache_type; say "cache_type now $(cat $q/cache_type)"
  blk-tool write /dev/vda 200M 4M 4
  echo "write back" >$q/cache_type; say "cache_type now $(cat $q/cache_type)"
  blk-tool write /dev/vda 256M 256M 5
  blk-tool verify /dev/vda 256M 256M 5
  ;;
second)
  blk-tool verify /dev/vda 1M 64M 1
  blk-tool verify /dev/vda 200M 4M 4
  blk-tool zeros /dev/vda 100M 4M
  /usr/sbin/mke2fs -q -t ext4 -F /dev/vda && say "mkfs.ext4 ok (discards the whole disk first)"
  blk-tool zeros /dev/vda 300M 64M  # was pattern 5; block group 2 holds no ext4 metadata
  mount -t ext4 /dev/vda /mnt && say "mounted"
  dd if=/dev/zero of=/mnt/a bs=1M count=200 2>/dev/null; sync
  say "df after write: $(df -k /mnt | tail -1)"
  rm /mnt/a; sync
  say "fstrim: $(fstrim -v /mnt 2>&1)"
  umount /mnt && say "unmounted"
  ;;
ro)
  blk-tool write /dev/vda 1M 1M 9 || true
  dd if=/dev/vda of=/dev/null bs=1M count=64 2>/dev/null && say "read 64 MiB ok"
  ;;
bench)
  blk-tool write /dev/vda 0 256M 8
  blk-tool verify /dev/vda 0 256M 8
  blk-tool randwrite /dev/vda 0 256M 3000
  blk-tool randread /dev/vda 0 256M 3000
  blk-tool fsync /dev/vda
  ;;
mq)
  blk-tool write /dev/vda 0 64M 6 & blk-tool write /dev/vda 512M 64M 7 & wait
  blk-tool verify /dev/vda 0 64M 6 & blk-tool verify /dev/vda 512M 64M 7 & wait
  ;;
esac
say "guest done"
poweroff -f
EOF
chmod 755 "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null) | gzip -1 >"$W/initrd.gz"

qemu-img create -q -f qcow2 "$IMG" 1G

start_blk() {  # start_blk LOG [ARGS...]
  local log=$1; shift
  "$BLK" --socket "$W/blk.sock" --image "$IMG" --verbose "$@" >"$log" 2>&1 &
  BLKPID=$!
  pids+=($BLKPID)
  for _ in $(seq 50); do [ -S "$W/blk.sock" ] && return 0; sleep 0.1; done
  echo "pinata-blk did not start"; cat "$log"; exit 1
}
stop_blk() {
  kill -TERM "$BLKPID"; wait "$BLKPID" && echo "pinata-blk exited 0 on SIGTERM"
  rm -f "$W/blk.sock"
}
boot() {  # boot MODE MACHINE [QEMU ARGS...]
  local mode=$1 machine=$2 t0
  shift 2
  t0=$(date +%s.%N)
  if [ "$machine" = microvm ]; then
    timeout 300 qemu-system-x86_64 -M microvm,memory-backend=mem "$@" \
      -object memory-backend-memfd,id=mem,size=512M,share=on -accel tcg -m 512M -smp 1 \
      -nodefaults -no-user-config -display none -serial stdio -no-reboot \
      -kernel "$VMLINUX" -initrd "$W/initrd.gz" \
      -append "console=ttyS0 panic=-1 quiet tsc_early_khz=$KHZ blkcheck=$mode" \
      -chardev socket,id=blk0,path="$W/blk.sock" -device vhost-user-blk,chardev=blk0 \
      >"$W/console-$mode.log" 2>&1
  else
    timeout 300 qemu-system-x86_64 -M q35,memory-backend=mem "$@" \
      -object memory-backend-memfd,id=mem,size=512M,share=on -accel tcg -m 512M -smp 2 \
      -nodefaults -no-user-config -display none -serial stdio -no-reboot \
      -kernel "$VMLINUX" -initrd "$W/initrd.gz" \
      -append "console=ttyS0 panic=-1 quiet blkcheck=$mode" \
      -chardev socket,id=blk0,path="$W/blk.sock" \
      -device vhost-user-blk-pci,chardev=blk0,num-queues=2 \
      >"$W/console-$mode.log" 2>&1
  fi
  echo "=== boot '$mode' ($machine): QEMU ran $(echo "$(date +%s.%N) - $t0" | bc) s"
  grep -E "BLKCHECK|RESULT" "$W/console-$mode.log" || { tail -30 "$W/console-$mode.log"; exit 1; }
}
host_verify() {
  qemu-img check -U "$IMG" | sed 's/^/host: /'
  qemu-img convert -U -O raw "$IMG" "$W/disk.raw"
  "$TOOL" verify "$W/disk.raw" 1M 64M 1 | sed 's/^/host: /'
  "$TOOL" zeros "$W/disk.raw" 100M 4M | sed 's/^/host: /'
  "$TOOL" verify "$W/disk.raw" 104M 4M 2 | sed 's/^/host: /'
  "$TOOL" zeros "$W/disk.raw" 121M 2M | sed 's/^/host: /'
  "$TOOL" verify "$W/disk.raw" 200M 4M 4 | sed 's/^/host: /'
  "$TOOL" verify "$W/disk.raw" 256M 256M 5 | sed 's/^/host: /'
  rm -f "$W/disk.raw"
}
alloc() { echo "file $(stat -c %s "$IMG") bytes, $(( $(stat -c %b "$IMG") * 512 )) allocated"; }

start_blk "$W/blk-rw.log"
boot first microvm
echo "host: after boot 1: $(alloc)"
host_verify
boot second microvm
echo "host: after boot 2 (fstrim): $(alloc)"
stop_blk
qemu-img check "$IMG" | sed 's/^/host: /'
# The qcow2 header's incompatible_features (offset 72, big endian): bit 0 is the dirty bit.
echo "host: incompatible_features = 0x$(od -An -tx1 -j72 -N8 "$IMG" | tr -d ' ') (bit 0 = dirty)"
echo "--- backend (rw)"
grep -cE "GET_VRING_BASE" "$W/blk-rw.log" | sed 's/^/GET_VRING_BASE requests: /'
grep -vE "pinata-blk: (SET_|GET_)|queue [0-9]+ ready" "$W/blk-rw.log" | tail -25

start_blk "$W/blk-ro.log" --read-only
boot ro microvm
stop_blk
echo "--- backend (ro)"
grep -vE "pinata-blk: (SET_|GET_)|queue [0-9]+ ready" "$W/blk-ro.log" | tail -8

start_blk "$W/blk-mq.log" --queues 2
boot mq q35
stop_blk
echo "--- backend (mq)"
grep -E "queue [0-9]+ ready" "$W/blk-mq.log" | sort | uniq -c
qemu-img check "$IMG" | sed 's/^/host: /'

echo "=== bench: pinata-blk vs qemu-storage-daemon (same guest, same QEMU command), $ROUNDS round(s)"
: >"$W/bench.txt"
for round in $(seq "$ROUNDS"); do
  rm -f "$IMG"; qemu-img create -q -f qcow2 "$IMG" 1G
  start_blk "$W/blk-bench.log" --queues 1
  echo "--- round $round: pinata-blk"
  boot bench microvm -global virtio-mmio.force-legacy=false
  stop_blk
  grep RESULT "$W/console-bench.log" | sed 's/^/pinata /' >>"$W/bench.txt"
  rm -f "$IMG"; qemu-img create -q -f qcow2 "$IMG" 1G
  qemu-storage-daemon --blockdev driver=file,node-name=file,filename="$IMG" \
    --blockdev driver=qcow2,node-name=disk,file=file \
    --export type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path="$W/blk.sock",writable=on \
    >"$W/qsd.log" 2>&1 &
  BLKPID=$!; pids+=($BLKPID)
  for _ in $(seq 50); do [ -S "$W/blk.sock" ] && break; sleep 0.1; done
  echo "--- round $round: qemu-storage-daemon"
  boot bench microvm -global virtio-mmio.force-legacy=false
  kill -TERM "$BLKPID"; wait "$BLKPID" || true
  rm -f "$W/blk.sock"
  grep RESULT "$W/console-bench.log" | sed 's/^/qsd /' >>"$W/bench.txt"
done
echo "--- medians (pinata-blk / qemu-storage-daemon)"
awk '{
  who=$1; op=$3; v=$(NF-1); sub(/^\(/, "", v); if (op == "fsync") next
  vals[who, op] = vals[who, op] " " v; ops[op] = 1
}
function median(list,   a, n, i, j, t) {
  n = split(list, a, " ")
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return a[int((n + 1) / 2)]
}
END {
  for (op in ops) {
    p = median(vals["pinata", op]); q = median(vals["qsd", op])
    printf "%-10s pinata-blk %8.1f  qsd %8.1f  ratio %.2f  (%s)\n", op, p, q, p / q, (op ~ /^rand/ ? "IOPS" : "MiB/s")
  }
}' "$W/bench.txt"
