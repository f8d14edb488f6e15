#!/usr/bin/env bash
# Integration: our qcow2 library (src/disk/, driven by pinata-disk-tool) against QEMU's own
# tools as the oracle (qemu-img check/compare/map/convert, qemu-io).
#   1. differential: the same seeded writes/discards/zero-writes/flushes on our qcow2 and on a
#      raw model file give identical disks; qemu-img check is clean and qemu-img map sane;
#   2. interop: images qemu-img makes (v2 and v3, 4k/64k/2M clusters, compressed, with a
#      backing file) read the same through us and stay valid after our writes; images we make
#      read bit-identically through qemu-img convert;
#   3. crash: the writer is killed (-9) at random points 50 times; qemu-img check finds no
#      corruption (leaks are allowed) and everything acknowledged by a flush is there;
#   4. compaction: fill, discard most, compact: the file ends near the data held, intact.
#   5. hostile images: refused with a message, never a crash.
#
#   tests/integration/qcow2_interop_test.sh BUILD_DIR
source "$(dirname "$0")/../e2e/lib.sh"
TOOL="$BUILD/src/disk/pinata-disk-tool"
D="$WORK/disk"
mkdir -p "$D"
cd "$D"

# qemu-img check: 0 clean, 3 only leaks; anything else (2: corruption) fails.
check_no_corruption() {
  local rc=0
  qemu-img check -q "$1" >/dev/null 2>&1 || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ]
}
check_clean() { qemu-img check -q "$1" >/dev/null 2>&1; }
same() { qemu-img compare -q "$1" "$2" 2>/dev/null; }
# Every guest byte mapped once, data extents inside the file and not overlapping each other.
map_sane() {
  qemu-img map --output=json "$1" >map.json 2>/dev/null || return 1
  python3 - "$1" map.json <<'PY'
import json, os, sys
img, m = sys.argv[1], json.load(open(sys.argv[2]))
size = os.path.getsize(img)
pos, host = 0, []
for e in m:
    if e["start"] != pos: sys.exit("gap at %d" % pos)
    pos += e["length"]
    if e.get("offset") is not None and e.get("data"):
        if e["offset"] < 512 or e["offset"] + e["length"] > size + 2 * 1024 * 1024:
            sys.exit("extent outside the file: %r" % e)
        host.append((e["offset"], e["offset"] + e["length"]))
host.sort()
for a, b in zip(host, host[1:]):
    if b[0] < a[1]: sys.exit("overlapping host extents %r %r" % (a, b))
virt = json.loads(os.popen("qemu-img info --output=json " + img).read())["virtual-size"]
if pos != virt: sys.exit("map covers %d of %d bytes" % (pos, virt))
PY
}

# --- 1. differential ----------------------------------------------------------------------
for spec in "4096 1.1 16" "65536 1.1 16" "2097152 1.1 16" "65536 0.10 16" "512 1.1 64" "4096 1.1 1"; do
  read -r cs compat rbits <<<"$spec"
  for seed in 1 2 3; do
    name="cs=$cs compat=$compat refcount_bits=$rbits seed=$seed"
    rm -f d.qcow2 d.raw
    "$TOOL" create d.qcow2 40M --cluster-size "$cs" --compat "$compat" --refcount-bits "$rbits"
    truncate -s 40M d.raw
    if ! "$TOOL" random d.qcow2 d.raw --seed "$seed" --ops 600 >/dev/null; then
      not_ok "differential $name: the random run failed"
      continue
    fi
    check "differential $name: qemu-img compare equal" same d.qcow2 d.raw
    check "differential $name: qemu-img check clean" check_clean d.qcow2
    check "differential $name: qemu-img map sane" map_sane d.qcow2
  done
done
rm -f d.qcow2 d.raw d.conv
"$TOOL" create d.qcow2 20M --cluster-size 65536 && truncate -s 20M d.raw
"$TOOL" random d.qcow2 d.raw --seed 11 --ops 400 >/dev/null
qemu-img convert -O raw d.qcow2 d.conv
"$TOOL" export d.qcow2 d.ours
check "an image we made reads bit-identically through qemu-img convert -O raw" cmp -s d.conv d.ours
check "... and equals the model" cmp -s d.conv d.raw

echo "#   ($SECONDS s)"
# --- 2. images made by qemu ---------------------------------------------------------------
for compat in 0.10 1.1; do
  for cs in 4k 64k 2M; do
    name="qemu compat=$compat cluster_size=$cs"
    rm -f q.qcow2 q.raw q.ours
    qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs q.qcow2 40M
    qemu-io -c "write -P 0x11 0 3M" -c "write -P 0x22 5M 100k" -c "write -z 8M 1M" -c "discard 1M 1M" \
      -c "write -P 0x33 39M 1M" q.qcow2 >/dev/null
    qemu-img convert -O raw q.qcow2 q.raw
    "$TOOL" export q.qcow2 q.ours
    check "$name: we read what qemu wrote" cmp -s q.ours q.raw
    if "$TOOL" random q.qcow2 q.raw --seed 7 --ops 400 >/dev/null; then
      check "$name: after our writes, equal to the model" same q.qcow2 q.raw
      check "$name: after our writes, qemu-img check clean" check_clean q.qcow2
      qemu-io -c "write -P 0x44 2M 300k" q.qcow2 >/dev/null
      qemu-io -c "write -P 0x44 2M 300k" -f raw q.raw >/dev/null
      "$TOOL" export q.qcow2 q.ours
      check "$name: qemu writes again after us and we read it" cmp -s q.ours q.raw
    else
      not_ok "$name: our random run failed"
    fi
  done
done

rm -f src.raw c.qcow2 c.ours c.raw
head -c 8M /dev/urandom >src.raw
python3 -c "f=open('src.raw','r+b'); f.seek(2<<20); f.write(b'pinata' * 400000)"
qemu-img convert -c -O qcow2 src.raw c.qcow2
"$TOOL" export c.qcow2 c.ours
check "compressed clusters (qemu-img convert -c) read correctly" cmp -s c.ours src.raw
cp src.raw c.raw
if "$TOOL" random c.qcow2 c.raw --seed 9 --ops 300 --max-len 200000 >/dev/null; then
  check "writes into compressed clusters copy them: equal to the model" same c.qcow2 c.raw
  check "... and qemu-img check is clean" check_clean c.qcow2
else
  not_ok "writes into a compressed image failed"
fi

rm -f base.qcow2 top.qcow2 top.raw top.ours base.before
qemu-img create -q -f qcow2 base.qcow2 30M
qemu-io -c "write -P 0x44 0 30M" base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
qemu-io -c "write -P 0x55 1M 1M" top.qcow2 >/dev/null
qemu-img convert -O raw top.qcow2 top.raw
cp base.qcow2 base.before
"$TOOL" export top.qcow2 top.ours
check "backing file: reads fall through to the backing image" cmp -s top.ours top.raw
if "$TOOL" random top.qcow2 top.raw --seed 3 --ops 300 >/dev/null; then
  check "backing file: after our writes, equal to the model" same top.qcow2 top.raw
  check "backing file: the top image is clean" check_clean top.qcow2
  check "backing file: the backing image was not written" cmp -s base.qcow2 base.before
else
  not_ok "writes over a backing file failed"
fi

echo "#   ($SECONDS s)"
# --- 3. crash consistency -----------------------------------------------------------------
crash_round() {  # image seed
  local img=$1 seed=$2 pid n rc
  "$TOOL" export "$img" base.raw
  "$TOOL" crash-writer "$img" --seed "$seed" --flush-every 8 >writer.out 2>writer.err &
  pid=$!
  sleep "0.$(printf '%02d' $((RANDOM % 60 + 5)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  n=$(tail -n 1 writer.out | awk '/^flushed seq/ {print $3}')
  n=${n:-0}
  if ! check_no_corruption "$img"; then
    echo "# round $seed: qemu-img check:"; qemu-img check "$img" 2>&1 | head -20
    return 1
  fi
  if ! "$TOOL" crash-verify "$img" base.raw --seed "$seed" --flushed "$n" --flush-every 8 2>verify.err; then
    echo "# round $seed (flushed $n):"; head -5 verify.err
    return 1
  fi
  total_flushed=$((total_flushed + n))
}
total_flushed=0
rm -f crash.qcow2 crash2.qcow2
"$TOOL" create crash.qcow2 32M --cluster-size 4096
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=64k crash2.qcow2 32M
bad=0
for i in $(seq 1 50); do
  img=crash.qcow2
  [ $((i % 2)) = 0 ] && img=crash2.qcow2
  crash_round "$img" "$i" || bad=$((bad + 1))
done
check "50 kill -9 rounds: no corruption and no lost flushed write ($bad bad rounds, $total_flushed flushed ops checked)" test "$bad" = 0
check "some rounds got as far as a flush" test "$total_flushed" -gt 0
"$TOOL" check crash.qcow2 --repair >/dev/null
check "after a repair the crashed v3 image is clean" check_clean crash.qcow2

echo "#   ($SECONDS s)"
# --- 4. compaction ------------------------------------------------------------------------
for cs in 4096 65536; do
  rm -f k.qcow2 k.raw
  "$TOOL" create k.qcow2 256M --cluster-size "$cs"
  truncate -s 256M k.raw
  python3 -c "
M = 1 << 20
for i in range(0, 256, 16): print('w %d %d %d' % (i * M, 16 * M, i + 1))
print('f')
for i in range(0, 250, 10): print('d %d %d' % (i * M + M, 9 * M))
print('f')" | "$TOOL" script k.qcow2 k.raw
  before=$(stat -c %s k.qcow2)
  expect_exit 0 "compaction (cluster size $cs) runs" "$TOOL" compact k.qcow2
  after=$(stat -c %s k.qcow2)
  used=$("$TOOL" info k.qcow2 | sed -n 's/^used_bytes=//p')
  echo "#   file $before -> $after bytes; $used bytes in use"
  check "compaction (cluster size $cs): file within 10% + 4 MiB of the data held" \
    test "$after" -le $((used + used / 10 + (4 << 20)))
  check "compaction (cluster size $cs): data intact" same k.qcow2 k.raw
  check "compaction (cluster size $cs): qemu-img check clean" check_clean k.qcow2
done

echo "#   ($SECONDS s)"
# --- 5. hostile images --------------------------------------------------------------------
"$TOOL" create h.qcow2 1M
cp h.qcow2 h1.qcow2
printf '\x00\x00\x00\x00\x00\x00\x01\x80' | dd of=h1.qcow2 bs=1 seek=72 conv=notrunc status=none
expect_exit 1 "an unknown incompatible feature is refused" "$TOOL" info h1.qcow2
check "... naming the bits" contains "$out" "bit 7, bit 8"
cp h.qcow2 h2.qcow2
printf '\x00\x00\x00\x40' | dd of=h2.qcow2 bs=1 seek=20 conv=notrunc status=none
expect_exit 1 "cluster_bits out of range is refused" "$TOOL" info h2.qcow2
head -c 100 h.qcow2 >h3.qcow2
expect_exit 1 "a truncated image is refused" "$TOOL" export h3.qcow2 h3.out
qemu-img create -q -f qcow2 -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2 1M
qemu-img create -q -f qcow2 -u -b loop-a.qcow2 -F qcow2 loop-b.qcow2 1M
expect_exit 1 "a backing-file loop is refused" "$TOOL" info loop-a.qcow2
check "... saying so" contains "$out" "loop"

cd /
finish
