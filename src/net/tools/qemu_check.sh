#!/usr/bin/env bash
# End-to-end check of pinata-net against a real Linux guest under QEMU (TCG), and a throughput
# comparison with QEMU's own user-mode network (-netdev user, the same libslirp inside QEMU).
#
#   src/net/tools/qemu_check.sh PINATA_NET NET_TOOL GUEST_BASE_DIR [WORKDIR]
#
# GUEST_BASE_DIR is a guest base from guest/build.sh (its vmlinux, modules/ and modules.list
# are used); NET_TOOL is the static net-tool (src/net/tools/net_tool.cc). The script builds a
# throwaway busybox initramfs whose /init brings eth0 up with udhcpc, fetches a page from a
# server on the host's 127.0.0.1 through the gateway (busybox nc), then moves NET_MIB MiB (default
# 64) guest->host and host->guest with net-tool, and (with netidle=N) sleeps N seconds so the
# host can measure pinata-net while the guest is attached but idle. Boots, same guest each time:
#   1. pinata-net, MTU 1500
#   2. pinata-net, MTU 65520 (QEMU host_mtu=65520), then the idle measurement
#   3. pinata-net, MTU 65520, the same pinata-net process as boot 2 (a new frontend)
#   4. QEMU -netdev user (MTU 1500; QEMU 7.2 has no MTU option for it)
# Host servers (net-tool serve): 18080 http, 18081 sink, 18082 source.
set -euo pipefail
NET=$1 TOOL=$2 BASE=$3 W=${4:-/tmp/net-check}
MIB=${NET_MIB:-64}
IDLE=${NET_IDLE_SECONDS:-10}
VMLINUX=${VMLINUX:-$BASE/vmlinux}
rm -rf "$W"; mkdir -p "$W"
KHZ=$(awk -F: '/cpu MHz/ {printf "%d", $2*1000; exit}' /proc/cpuinfo)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# ---- initramfs
R=$W/initramfs
mkdir -p "$R"/{bin,dev,proc,sys,etc,tmp,lib/modules}
cp /bin/busybox "$R/bin/busybox"  # busybox-static
cp "$TOOL" "$R/bin/net-tool"
want='virtio_ring virtio virtio_mmio failover net_failover virtio_net'
: >"$R/modules.order"
while read -r m; do
  name=$(basename "$m" .ko)
  for w in $want; do
    if [ "$name" = "$w" ]; then cp "$BASE/modules/$m" "$R/lib/modules/"; echo "$name" >>"$R/modules.order"; fi
  done
done <"$BASE/modules.list"
cat >"$R/etc/udhcpc.script" <<'EOF2'
#!/bin/sh
case "$1" in
bound|renew)
  ip addr flush dev "$interface"
  ip addr add "$ip/$mask" dev "$interface"
  ip route add default via "$router" dev "$interface"
  echo "$router" >/tmp/router
  echo "nameserver $dns" >/etc/resolv.conf
  ;;
esac
EOF2
chmod 755 "$R/etc/udhcpc.script"
cat >"$R/init" <<'EOF2'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for pass in 1 2; do for m in $(cat /modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done; done
say() { echo "NETCHECK: $*"; }
arg() { sed -n "s/.*$1=\([0-9a-z]*\).*/\1/p" /proc/cmdline; }
mib=$(arg netmib); idle=$(arg netidle)
for i in $(seq 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
[ -e /sys/class/net/eth0 ] || { say "no eth0"; poweroff -f; }
ip link set lo up; ip link set eth0 up
say "eth0 up at $(cut -d' ' -f1 /proc/uptime) s: mtu $(cat /sys/class/net/eth0/mtu), mac $(cat /sys/class/net/eth0/address)"
if udhcpc -i eth0 -n -q -t 5 -T 2 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1; then
  say "dhcp: $(ip -4 addr show eth0 | grep -o 'inet [0-9./]*'), gateway $(cat /tmp/router), $(cat /etc/resolv.conf)"
else
  say "dhcp failed: $(cat /tmp/udhcpc.log)"; poweroff -f
fi
H=$(cat /tmp/router)
# (busybox-static's wget crashes in this initramfs, with either network: HTTP by hand with nc)
say "http://$H:18080/: $(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 20 "$H" 18080 | tail -1)"
say "nslookup host.docker.internal: $(nslookup host.docker.internal 2>&1 | tr -s '\n\t' '  ')"
net-tool send "$H" 18081 "$mib"
net-tool recv "$H" 18082
say "rx_errors=$(cat /sys/class/net/eth0/statistics/rx_errors) rx_dropped=$(cat /sys/class/net/eth0/statistics/rx_dropped) rx_length_errors=$(cat /sys/class/net/eth0/statistics/rx_length_errors) tx_errors=$(cat /sys/class/net/eth0/statistics/tx_errors)"
if [ -n "$idle" ] && [ "$idle" != 0 ]; then
  say "idle start"
  sleep "$idle"
  say "idle end"
fi
say "guest done"
poweroff -f
EOF2
chmod 755 "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null) | gzip -1 >"$W/initrd.gz"

# ---- host servers
"$TOOL" serve 18080 http >"$W/http.log" 2>&1 & pids+=($!)
"$TOOL" serve 18081 sink >"$W/sink.log" 2>&1 & pids+=($!)
"$TOOL" serve 18082 source "$MIB" >"$W/source.log" 2>&1 & pids+=($!)

start_net() {  # start_net LOG MTU
  "$NET" --socket "$W/net.sock" --mtu "$2" --verbose >"$1" 2>&1 &
  NETPID=$!
  pids+=($NETPID)
  for _ in $(seq 50); do [ -S "$W/net.sock" ] && return 0; sleep 0.1; done
  echo "pinata-net did not start"; cat "$1"; exit 1
}
stop_net() {
  kill -TERM "$NETPID"; wait "$NETPID" && echo "pinata-net exited 0 on SIGTERM"
  rm -f "$W/net.sock"
}
# cpu_ticks PID: utime + stime (clock ticks) of all its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ {s += $2} END {print s}' "/proc/$1/status"; }

boot() {  # boot NAME IDLE NETDEV-ARGS...
  local name=$1 idle=$2 t0 qpid
  shift 2
  local sink0 source0
  sink0=$(wc -l <"$W/sink.log"); source0=$(wc -l <"$W/source.log")
  t0=$(date +%s.%N)
  timeout 600 qemu-system-x86_64 -M microvm,memory-backend=mem \
    -object memory-backend-memfd,id=mem,size=512M,share=on -accel tcg -m 512M -smp 1 \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot \
    -global virtio-mmio.force-legacy=false \
    -kernel "$VMLINUX" -initrd "$W/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet tsc_early_khz=$KHZ netmib=$MIB netidle=$idle" \
    "$@" >"$W/console-$name.log" 2>&1 &
  qpid=$!
  if [ "$idle" != 0 ]; then
    for _ in $(seq 3000); do grep -q "idle start" "$W/console-$name.log" && break; sleep 0.1; done
    sleep 1  # let the last ACKs and window updates settle
    # Two windows: right after the transfers (libslirp's TCP timers still run for connections
    # in TIME_WAIT, 2 x 5 s) and after that (nothing left: no wake-ups at all).
    local c0 s0 c1 s1 w
    for w in "first" "second"; do
      c0=$(cpu_ticks "$NETPID"); s0=$(switches "$NETPID")
      sleep "$IDLE"
      c1=$(cpu_ticks "$NETPID"); s1=$(switches "$NETPID")
      echo "idle ($w $IDLE s, guest attached and idle): pinata-net used $((c1 - c0)) CPU ticks ($(getconf CLK_TCK)/s) and was switched $((s1 - s0)) times (all threads)"
    done
    if command -v strace >/dev/null; then
      timeout 5 strace -c -f -p "$NETPID" -o "$W/strace-idle.txt" >/dev/null 2>&1 || true
      local calls
      calls=$(awk '$NF == "total" {print $4}' "$W/strace-idle.txt")
      echo "idle: strace -c -f -p pinata-net for 5 s: ${calls:-0} system calls"
      grep -E '^ +[0-9]' "$W/strace-idle.txt" | grep -v total | awk '{print "idle:   " $NF " x" $4}' | head -5 || true
    fi
  fi
  wait "$qpid" || true
  echo "=== boot '$name': QEMU ran $(echo "$(date +%s.%N) - $t0" | bc) s"
  grep -E "NETCHECK|RESULT" "$W/console-$name.log" | grep -v "idle start" || { tail -30 "$W/console-$name.log"; exit 1; }
  tail -n +$((sink0 + 1)) "$W/sink.log" | sed "s/^/host: /"
  tail -n +$((source0 + 1)) "$W/source.log" | sed "s/^/host: /"
}
NETDEV=(-chardev "socket,id=n0,path=$W/net.sock" -netdev vhost-user,id=net0,chardev=n0)

start_net "$W/net-1500.log" 1500
boot pinata-1500 0 "${NETDEV[@]}" -device virtio-net-device,netdev=net0
stop_net
echo "--- backend (MTU 1500)"
grep -vE "pinata-net: (SET_|GET_)|queue [0-9]+ ready" "$W/net-1500.log" | tail -8

start_net "$W/net-65520.log" 65520
boot pinata-65520 "$((2 * IDLE + 10))" "${NETDEV[@]}" -device virtio-net-device,netdev=net0,host_mtu=65520
boot pinata-65520-again 0 "${NETDEV[@]}" -device virtio-net-device,netdev=net0,host_mtu=65520
stop_net
echo "--- backend (MTU 65520, two frontends)"
grep -vE "pinata-net: (SET_|GET_)|queue [0-9]+ ready" "$W/net-65520.log" | tail -12

boot qemu-user 0 -netdev user,id=net0 -device virtio-net-device,netdev=net0

echo "=== summary (host-side timing, MiB/s; guest->host = host-sink, host->guest = host-source)"
for n in pinata-1500 pinata-65520 pinata-65520-again qemu-user; do
  g=$(grep -o 'guest-send [0-9]* bytes in [0-9.]* s = [0-9.]*' "$W/console-$n.log" | awk '{print $NF}')
  r=$(grep -o 'guest-recv [0-9]* bytes in [0-9.]* s = [0-9.]*' "$W/console-$n.log" | awk '{print $NF}')
  printf '%-20s guest->host %8s  host->guest %8s  (guest clock)\n' "$n" "${g:-?}" "${r:-?}"
done
