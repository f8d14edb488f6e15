#!/usr/bin/env bash
# Builds the "by hand" baseline initrd used by the boot benchmark (no pinata-init):
#
#   guest/make-baseline-initrd.sh OUT_INITRD [--base BASE_DIR]
#
# BASE_DIR is a guest base built by guest/build.sh (default: the newest one under
# $PINATA_CACHE/guest-base). The initrd holds a static busybox, the base's modules and a
# shell-script /init that loads the modules, mounts /dev/vda (root.img) read-only under an
# overlay with a tmpfs upper layer and switch_roots into /sbin/baseline-init, which mounts
# the usual file systems, configures eth0 statically (10.0.2.15/24 via 10.0.2.2, QEMU user
# networking), starts containerd and dockerd (-H tcp://0.0.0.0:2375 --tls=false and the unix
# socket). /var/lib/docker is /dev/vdb if present (formatted ext4 if blank), else a tmpfs.
# Markers "BASELINE: <stage> <uptime>" go to the console.
set -euo pipefail
export LC_ALL=C
die() { printf 'make-baseline-initrd: error: %s\n' "$*" >&2; exit 1; }

OUTF=""; BASE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --base) [ $# -ge 2 ] || die "--base needs a directory"; BASE=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" >&2; exit 2 ;;
        -*) die "unknown option $1" ;;
        *) [ -z "$OUTF" ] || die "one output file only"; OUTF=$1; shift ;;
    esac
done
[ -n "$OUTF" ] || die "usage: $0 OUT_INITRD [--base BASE_DIR]"
CACHE=${PINATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinata}
if [ -z "$BASE" ]; then
    BASE=$(ls -1dt "$CACHE"/guest-base/*/ 2>/dev/null | head -n1 | sed 's:/$::')
    [ -n "$BASE" ] || die "no guest base in $CACHE/guest-base; run guest/build.sh first"
fi
[ -f "$BASE/MANIFEST" ] && [ -f "$BASE/modules.list" ] || die "$BASE is not a complete guest base"
KVER=$(cat "$BASE/kernel.release")

# busybox-static's /bin/busybox (Debian's plain busybox package is dynamically linked).
if [ "$(dpkg-query -W -f '${Status}' busybox-static 2>/dev/null)" != "install ok installed" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2 || die "cannot install busybox-static"
fi
BUSYBOX=/bin/busybox

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
R=$TMP/root
mkdir -p "$R"/{bin,dev,proc,sys,run,newroot,lower,upper,mnt,etc/pinata} "$R/lib/modules/$KVER"
cp "$BUSYBOX" "$R/bin/busybox"
cp -a "$BASE/modules/." "$R/lib/modules/$KVER/"
sed "s|^|/lib/modules/$KVER/|" "$BASE/modules.list" >"$R/etc/pinata/modules.list"

cat >"$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { echo "BASELINE: $1 $(cut -d' ' -f1 /proc/uptime)" >/dev/console; }
up initramfs
while read -r m; do insmod "$m" 2>/dev/null; done </etc/pinata/modules.list
up modules
mount -t ext4 -o ro /dev/vda /lower || { echo "cannot mount /dev/vda"; exec sh; }
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/up /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/up,workdir=/upper/work /newroot
mkdir -p /newroot/.lower /newroot/.upper
mount --move /lower /newroot/.lower
mount --move /upper /newroot/.upper
cp /baseline-init /newroot/sbin/baseline-init
chmod 755 /newroot/sbin/baseline-init
up root
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /sbin/baseline-init
EOF
cat >"$R/baseline-init" <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
up() { echo "BASELINE: $1 $(cut -d' ' -f1 /proc/uptime)"; }
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
echo 1 >/proc/sys/net/ipv4/ip_forward
hostname pinata-baseline
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" >/etc/resolv.conf
if [ -b /dev/vdb ]; then
    blkid /dev/vdb >/dev/null 2>&1 || mke2fs -q -t ext4 /dev/vdb
    mount -t ext4 /dev/vdb /var/lib/docker
else
    mount -t tmpfs tmpfs /var/lib/docker
fi
up mounts
containerd >/run/containerd.log 2>&1 &
for i in $(seq 200); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done
up containerd
dockerd -H tcp://0.0.0.0:2375 --tls=false -H unix:///var/run/docker.sock \
    --containerd=/run/containerd/containerd.sock >/run/dockerd.log 2>&1 &
for i in $(seq 600); do [ -S /var/run/docker.sock ] && docker version >/dev/null 2>&1 && break; sleep 0.1; done
up dockerd
while :; do wait; sleep 1; done
EOF
chmod 755 "$R/init" "$R/baseline-init"
(cd "$R" && find . -mindepth 1 -printf '%P\n' | sort | cpio -o -H newc -R 0:0 --reproducible --quiet) >"$OUTF.tmp"
mv -f "$OUTF.tmp" "$OUTF"
echo "$OUTF"
