#!/usr/bin/env bash
# pinata guest image recipe.
#
#   guest/build.sh [--init PATH] [--out DIR] [--check]
#
# 1. Base (expensive, cached): Debian kernel (vmlinuz + extracted ELF vmlinux), the guest
#    kernel modules, and a read-only ext4 root image built with debootstrap. Built into
#    $PINATA_CACHE/guest-base/<key>/ where <key> is the sha256 of this script, packages.list,
#    kmods.list, the mirror/suite/iptables choice and the apt candidate versions of the kernel
#    and of every package in packages.list. Rebuilt only when the key changes.
# 2. Image (cheap, every run, needs --init): $OUT/{vmlinux,vmlinuz,root.img,kernel.release}
#    hard-linked from the base, plus initrd.img (uncompressed newc cpio: /init = pinata-init,
#    the modules and /etc/pinata/modules.list), and $OUT/MANIFEST (sha256sum format) last.
#
# --check only verifies $OUT/MANIFEST (exit 0 = intact, 1 = missing/corrupt).
#
# Environment: PINATA_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/pinata),
#   PINATA_MIRROR (default: the host's apt source for the suite), PINATA_SUITE (bookworm),
#   PINATA_IPTABLES (legacy|nft, default legacy), PINATA_GUEST_UPGRADE (1: apply
#   $SUITE-updates and $SUITE-security to the root fs after debootstrap; 0: don't),
#   PINATA_BUILD_TMPFS (1: unpack the kernel and root fs on a private tmpfs; 0: on disk).
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
PACKAGES_LIST="$SCRIPT_DIR/packages.list"
KMODS_LIST="$SCRIPT_DIR/kmods.list"

CACHE=${PINATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinata}
SUITE=${PINATA_SUITE:-bookworm}
IPTABLES_MODE=${PINATA_IPTABLES:-legacy}
UPGRADE=${PINATA_GUEST_UPGRADE:-1}
BASES_KEPT=2

INIT=""
OUT=""
CHECK=0

log() { printf 'guest/build: %s\n' "$*" >&2; }
die() { printf 'guest/build: error: %s\n' "$*" >&2; exit 1; }
usage() {
    cat >&2 <<EOF
usage: $0 [--init PATH_TO_PINATA_INIT] [--out DIR] [--check]
  --init PATH  static pinata-init binary; required to assemble the image dir
               (without it only the cached base is built)
  --out DIR    image dir (default \$PINATA_CACHE/guest = $CACHE/guest)
  --check      verify DIR/MANIFEST and exit 0 (intact) or 1
EOF
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --init) [ $# -ge 2 ] || usage; INIT=$2; shift 2 ;;
        --init=*) INIT=${1#*=}; shift ;;
        --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --check) CHECK=1; shift ;;
        -h|--help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
OUT=${OUT:-$CACHE/guest}

# ---------------------------------------------------------------------------- --check
if [ "$CHECK" = 1 ]; then
    if [ ! -f "$OUT/MANIFEST" ]; then
        echo "guest/build: check FAILED: $OUT/MANIFEST is missing" >&2; exit 1
    fi
    if (cd "$OUT" && sha256sum --quiet --strict -c MANIFEST) >&2; then
        echo "guest/build: check OK: $OUT ($(wc -l <"$OUT/MANIFEST") files match MANIFEST)"
        exit 0
    fi
    echo "guest/build: check FAILED: $OUT does not match its MANIFEST" >&2
    exit 1
fi

# ---------------------------------------------------------------------------- timings
T_START=$(date +%s.%N)
T_LAST=$T_START
stage() { # stage NAME: print the time spent since the previous stage mark
    local now; now=$(date +%s.%N)
    awk -v a="$T_LAST" -v b="$now" -v m="$1" 'BEGIN { printf "guest/build: [%6.2fs] %s\n", b - a, m }' >&2
    T_LAST=$now
}

# ---------------------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, device-independent image build)"
[ -f "$PACKAGES_LIST" ] || die "missing $PACKAGES_LIST"
[ -f "$KMODS_LIST" ] || die "missing $KMODS_LIST"
case "$IPTABLES_MODE" in legacy|nft) ;; *) die "PINATA_IPTABLES must be legacy or nft" ;; esac
if [ -n "$INIT" ]; then
    [ -f "$INIT" ] || die "--init $INIT: no such file"
    [ -r "$INIT" ] || die "--init $INIT: not readable"
fi

ensure_host_tools() {
    local missing=() pair
    for pair in debootstrap:debootstrap cpio:cpio xz:xz-utils zstd:zstd mke2fs:e2fsprogs \
                depmod:kmod modprobe:kmod flock:util-linux dpkg-deb:dpkg; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "${pair%%:*}" >/dev/null 2>&1 \
            || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        log "installing missing host packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install ${missing[*]} failed"
    fi
}
export PATH=$PATH:/usr/sbin:/sbin
ensure_host_tools

# ---------------------------------------------------------------------------- inputs
read_list() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$' || true; }

# The mirror for $SUITE from the host's apt sources (deb822 *.sources, then one-line lists).
# $1 = suite to look for. Prints the URI or nothing.
host_mirror_for() {
    local want=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v want="$want" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uris != "") {
                    split(uris, u, " "); print u[1]; found = 1; exit
                }
                types = ""; uris = ""; suites = ""; enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { line = $0; key = tolower(line); sub(/:.*/, "", key); val = line; sub(/^[^:]*:[ \t]*/, "", val)
              if (key == "types") types = val; else if (key == "uris") uris = val
              else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val) }
            END { if (!found) flush() }' "$f" | head -n1 | grep . && return 0
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v want="$want" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                                           if ($(i+1) == want) { print $i; exit } }' "$f" | grep . && return 0
    done
    return 0
}
MIRROR=${PINATA_MIRROR:-$(host_mirror_for "$SUITE")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}
SECURITY_MIRROR=$(host_mirror_for "$SUITE-security")
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SECURITY_MIRROR=${SECURITY_MIRROR%/}

mapfile -t PACKAGES < <(read_list "$PACKAGES_LIST")
[ ${#PACKAGES[@]} -gt 0 ] || die "$PACKAGES_LIST lists no packages"

# apt-cache runs cost ~0.8 s each here; their answers are cached until the apt state changes.
resolve_apt() {
    POLICY=$(apt-cache policy linux-image-amd64 "${PACKAGES[@]}" 2>/dev/null \
        | awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) } /Candidate:/ { print p, $2 }')
    KERNEL_META_VERSION=$(awk '$1 == "linux-image-amd64" { print $2 }' <<<"$POLICY")
    if [ -z "$KERNEL_META_VERSION" ] || [ "$KERNEL_META_VERSION" = "(none)" ]; then
        die "apt-cache policy linux-image-amd64 has no candidate (run apt-get update?)"
    fi
    # linux-image-amd64 depends on the real package: "linux-image-6.1.0-37-amd64 (= 6.1.140-1)".
    read -r KERNEL_PKG KERNEL_PKG_VERSION < <(apt-cache show "linux-image-amd64=$KERNEL_META_VERSION" 2>/dev/null \
        | awk -F': ' '/^Depends:/ { print $2; exit }' | tr ',' '\n' \
        | sed -n 's/^ *\(linux-image-[0-9][^ ]*-amd64\) *(= *\([^)]*\)).*/\1 \2/p' | head -n1) || true
    [ -n "${KERNEL_PKG:-}" ] && [ -n "${KERNEL_PKG_VERSION:-}" ] \
        || die "cannot resolve linux-image-amd64 $KERNEL_META_VERSION to a real kernel package"
}
mkdir -p "$CACHE/guest-base"
APT_CACHE_FILE="$CACHE/guest-base/.apt-resolved"
APT_STAMP=$( { printf '%s\n' "${PACKAGES[@]}"
    find /var/lib/apt/lists /etc/apt /var/lib/dpkg/status -maxdepth 2 -printf '%p %s %T@\n' 2>/dev/null | sort
    } | sha256sum | cut -c1-64)
if [ -f "$APT_CACHE_FILE" ] && [ "$(head -n1 "$APT_CACHE_FILE")" = "$APT_STAMP" ]; then
    { read -r _; read -r KERNEL_META_VERSION; read -r KERNEL_PKG KERNEL_PKG_VERSION; POLICY=$(cat); } <"$APT_CACHE_FILE"
else
    resolve_apt
    printf '%s\n%s\n%s %s\n%s\n' "$APT_STAMP" "$KERNEL_META_VERSION" "$KERNEL_PKG" "$KERNEL_PKG_VERSION" "$POLICY" \
        >"$APT_CACHE_FILE.$$" && mv -f "$APT_CACHE_FILE.$$" "$APT_CACHE_FILE"
fi
KVER=${KERNEL_PKG#linux-image-}

KEY=$( {
    echo "pinata-guest-base v1"
    sha256sum <"$SCRIPT_PATH"
    sha256sum <"$PACKAGES_LIST"
    sha256sum <"$KMODS_LIST"
    echo "suite=$SUITE mirror=$MIRROR security=$SECURITY_MIRROR iptables=$IPTABLES_MODE upgrade=$UPGRADE"
    echo "kernel=$KERNEL_PKG $KERNEL_PKG_VERSION meta=$KERNEL_META_VERSION"
    echo "$POLICY"
} | sha256sum | cut -c1-64)
BASES="$CACHE/guest-base"
BASE="$BASES/$KEY"
mkdir -p "$BASES"
stage "inputs resolved: kernel $KERNEL_PKG $KERNEL_PKG_VERSION, mirror $MIRROR, key ${KEY:0:16}"

# One builder at a time per cache (concurrent callers wait, then find the base built).
exec 9>"$BASES/.lock"
if ! flock -n 9; then
    log "another build holds $BASES/.lock; waiting"
    flock 9
fi

# ---------------------------------------------------------------------------- base: helpers
TMPDIRS=()
MOUNTS=()          # work tmpfs
CHROOT_MOUNTS=()   # proc/sys/dev inside the root fs being built
umount_under() { # lazily unmount every mount point at or below $1, deepest first
    local m
    # (grep finding nothing is the normal case: it must not trip errexit in the EXIT trap)
    { awk '{ print $2 }' /proc/self/mounts | grep -E "^$1(/|\$)" || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}
cleanup() {
    local i
    for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${CHROOT_MOUNTS[$i]}" 2>/dev/null || true; done
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
    for i in "${TMPDIRS[@]}"; do [ -n "$i" ] && { umount_under "$i"; rm -rf --one-file-system "$i"; }; done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stat snapshot of a verified base; lets a warm run skip re-hashing ~0.5 GB (sha256 of
# everything takes seconds). A changed size/mtime/inode forces a full sha256sum -c.
stat_snapshot() { (cd "$1" && find . -type f ! -name MANIFEST -printf '%P %s %T@ %i\n' | sort; stat -c 'MANIFEST %s %Y %i' MANIFEST); }

verify_base() { # 0 = intact
    local dir=$1 stamp="$BASES/.${1##*/}.verified"
    [ -f "$dir/MANIFEST" ] || { log "base $dir has no MANIFEST (partial build?)"; return 1; }
    if [ -f "$stamp" ] && [ "$(stat_snapshot "$dir")" = "$(cat "$stamp")" ]; then
        return 0
    fi
    # Every file on disk must be listed, and every listed file must match.
    local listed ondisk
    listed=$(awk '{ sub(/^[^ ]+  /, ""); print }' "$dir/MANIFEST" | sort)
    ondisk=$(cd "$dir" && find . -type f ! -name MANIFEST -printf '%P\n' | sort)
    if [ "$listed" != "$ondisk" ]; then
        log "base $dir: files differ from MANIFEST"; return 1
    fi
    if ! (cd "$dir" && sha256sum --quiet --strict -c MANIFEST >/dev/null 2>&1); then
        log "base $dir: sha256sum -c MANIFEST failed (corrupt)"; return 1
    fi
    stat_snapshot "$dir" >"$stamp"
    return 0
}

write_manifest() { # dir: MANIFEST of all regular files, relative names, written last
    (cd "$1" && find . -type f ! -name MANIFEST -printf '%P\n' | sort | xargs -r -d '\n' sha256sum >MANIFEST.tmp \
        && mv -f MANIFEST.tmp MANIFEST)
}

# ---------------------------------------------------------------------------- base: kernel
build_kernel() { # $1 = work dir, $2 = base staging dir
    local work=$1 dst=$2 kroot="$1/kroot"
    mkdir -p "$work/deb" "$kroot"
    (cd "$work/deb" && apt-get download -o APT::Sandbox::User=root "$KERNEL_PKG=$KERNEL_PKG_VERSION" >&2) \
        || die "apt-get download $KERNEL_PKG=$KERNEL_PKG_VERSION failed"
    dpkg-deb -x "$work"/deb/*.deb "$kroot"
    local vmlinuz="$kroot/boot/vmlinuz-$KVER"
    [ -f "$vmlinuz" ] || die "$KERNEL_PKG has no boot/vmlinuz-$KVER"
    [ -d "$kroot/lib/modules/$KVER" ] || die "$KERNEL_PKG has no lib/modules/$KVER"
    cp "$vmlinuz" "$dst/vmlinuz"
    echo "$KVER" >"$dst/kernel.release"
    extract_vmlinux "$vmlinuz" "$dst/vmlinux" "$work"
    stage "kernel: downloaded, unpacked, vmlinux extracted ($(du -h "$dst/vmlinux" | cut -f1))"
}

# The bzImage's protected-mode part carries the compressed ELF vmlinux. The setup header
# gives its place (setup_sects at 0x1f1, payload_offset/length at 0x248/0x24c, relative to
# the protected-mode code at (setup_sects+1)*512); the payload ends with a 4-byte size.
# If the header looks wrong, fall back to scanning for compressor magic.
le32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
decompress_payload() { # file offset length out
    local f=$1 off=$2 len=$3 out=$4 magic
    magic=$(od -An -t x1 -j "$off" -N 6 "$f" | tr -d ' \n')
    local cat_payload="tail -c +$((off + 1)) $f"
    case "$magic" in
        fd377a585a00*) $cat_payload | head -c "$len" | xz -dc --single-stream >"$out" 2>/dev/null || true ;;
        28b52ffd*)     $cat_payload | head -c "$len" | zstd -dcq >"$out" 2>/dev/null || true ;;
        1f8b08*)       $cat_payload | head -c "$len" | gzip -dc >"$out" 2>/dev/null || true ;;
        02214c18*)     $cat_payload | head -c "$len" | lz4 -dc >"$out" 2>/dev/null || true ;;
        *) return 1 ;;
    esac
    [ "$(od -An -t x1 -N 4 "$out" | tr -d ' \n')" = 7f454c46 ]
}
extract_vmlinux() { # bzImage out work
    local bz=$1 out=$2 work=$3 setup_sects pm off len
    [ "$(dd if="$bz" bs=1 skip=$((0x202)) count=4 status=none)" = HdrS ] || die "$bz is not a bzImage"
    setup_sects=$(od -An -t u1 -j $((0x1f1)) -N 1 "$bz" | tr -d ' ')
    [ "$setup_sects" = 0 ] && setup_sects=4
    pm=$(((setup_sects + 1) * 512))
    off=$((pm + $(le32 "$bz" $((0x248)))))
    len=$(le32 "$bz" $((0x24c)))
    # The payload's last 4 bytes are the uncompressed size, not compressed data.
    if [ "$len" -gt 4 ] && decompress_payload "$bz" "$off" $((len - 4)) "$out.tmp"; then
        mv "$out.tmp" "$out"; return 0
    fi
    log "bzImage header payload not usable; scanning for compressor magic"
    local cand
    for cand in $(grep -obUaP '\xfd7zXZ\x00|\x28\xb5\x2f\xfd|\x1f\x8b\x08' "$bz" | cut -d: -f1 | head -n 50); do
        if decompress_payload "$bz" "$cand" $(($(stat -c %s "$bz") - cand)) "$out.tmp"; then
            mv "$out.tmp" "$out"; return 0
        fi
    done
    rm -f "$out.tmp"
    die "could not extract an ELF vmlinux from $bz"
}

# ---------------------------------------------------------------------------- base: modules
# Resolves kmods.list against the unpacked kernel; fills $dst/modules/ (decompressed .ko,
# same relative paths as under lib/modules/$KVER/) and $dst/modules.list (load order).
build_modules() { # work dst
    local work=$1 dst=$2 kroot="$1/kroot" mdir line name optional mods=() builtin=() missing=()
    mdir="$kroot/lib/modules/$KVER"
    depmod -b "$kroot" -F "$kroot/boot/System.map-$KVER" "$KVER" 2>/dev/null || depmod -b "$kroot" "$KVER"
    local order="$work/modorder"
    : >"$order"
    while read -r line; do
        optional=0
        case "$line" in \?*) optional=1; line=${line#\?} ;; esac
        name=$line
        local deps
        if ! deps=$(modprobe --show-depends -d "$kroot" -S "$KVER" "$name" 2>&1); then
            if [ "$optional" = 1 ]; then missing+=("$name"); continue; fi
            die "required module $name: $deps"
        fi
        # "insmod /path/x.ko [opts]" lines in dependency order; "builtin x" for built-ins.
        printf '%s\n' "$deps" | awk '$1 == "insmod" { print $2 }' >>"$order"
        if printf '%s\n' "$deps" | grep -q "^builtin $name\$"; then builtin+=("$name"); fi
    done < <(read_list "$KMODS_LIST")
    mkdir -p "$dst/modules"
    local abs rel plain
    : >"$dst/modules.list"
    awk '!seen[$0]++' "$order" | while read -r abs; do
        rel=${abs#"$mdir"/}
        [ "$rel" != "$abs" ] || die "module path outside $mdir: $abs"
        plain=${rel%.xz}; plain=${plain%.zst}; plain=${plain%.gz}
        mkdir -p "$dst/modules/$(dirname "$plain")"
        case "$rel" in
            *.ko.xz)  xz -dc "$abs" >"$dst/modules/$plain" ;;
            *.ko.zst) zstd -dcq "$abs" >"$dst/modules/$plain" ;;
            *.ko.gz)  gzip -dc "$abs" >"$dst/modules/$plain" ;;
            *.ko)     cp "$abs" "$dst/modules/$plain" ;;
            *) die "unexpected module file $abs" ;;
        esac
        echo "$plain" >>"$dst/modules.list"
    done
    [ ${#builtin[@]} -eq 0 ] || log "built into the kernel (skipped): ${builtin[*]}"
    [ ${#missing[@]} -eq 0 ] || log "optional modules not in this kernel (skipped): ${missing[*]}"
    stage "modules: $(wc -l <"$dst/modules.list") .ko files ($(du -sh "$dst/modules" | cut -f1))"
}

# ---------------------------------------------------------------------------- base: root fs
chroot_mount() { # rootfs
    mount -t proc proc "$1/proc"; CHROOT_MOUNTS+=("$1/proc")
    mount -t sysfs sysfs "$1/sys"; CHROOT_MOUNTS+=("$1/sys")
    mount --bind /dev "$1/dev"; CHROOT_MOUNTS+=("$1/dev")
    mount -t devpts devpts "$1/dev/pts" -o newinstance,ptmxmode=666 2>/dev/null && CHROOT_MOUNTS+=("$1/dev/pts") || true
}
chroot_umount() {
    local i
    for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${CHROOT_MOUNTS[$i]}" || umount -l "${CHROOT_MOUNTS[$i]}"
    done
    CHROOT_MOUNTS=()
}

build_rootfs() { # work dst
    local work=$1 dst=$2 root="$1/rootfs" include
    include=$(IFS=,; echo "${PACKAGES[*]}")
    mkdir -p "$root" "$CACHE/debootstrap-debs"
    log "debootstrap --variant=minbase --include=$include $SUITE $MIRROR"
    if ! debootstrap --variant=minbase --include="$include" --cache-dir="$CACHE/debootstrap-debs" \
            "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.out" 2>&1; then
        tail -n 30 "$work/debootstrap.out" >&2
        [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    fi
    stage "rootfs: debootstrap"

    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
    chroot_mount "$root"
    if [ "$UPGRADE" = 1 ]; then
        cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        rm -f "$root/etc/apt/sources.list"
        if ! chroot "$root" sh -c 'export DEBIAN_FRONTEND=noninteractive;
                apt-get -o Acquire::Check-Valid-Until=false update -qq &&
                apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade' >"$work/upgrade.out" 2>&1; then
            tail -n 30 "$work/upgrade.out" >&2
            die "apt-get dist-upgrade in the root fs failed"
        fi
        stage "rootfs: $SUITE-updates/$SUITE-security applied"
    fi

    # iptables flavour for dockerd (both sets of kernel modules are shipped).
    chroot "$root" update-alternatives --set iptables "/usr/sbin/iptables-$IPTABLES_MODE" >/dev/null
    chroot "$root" update-alternatives --set ip6tables "/usr/sbin/ip6tables-$IPTABLES_MODE" >/dev/null
    local flavour=legacy; [ "$IPTABLES_MODE" = nft ] && flavour=nf_tables
    chroot "$root" /usr/sbin/iptables --version | grep -q "($flavour)" \
        || die "/usr/sbin/iptables in the root fs does not run as iptables-$IPTABLES_MODE"
    chroot "$root" sh -c 'command -v dockerd containerd runc tini modprobe ip mke2fs' >/dev/null \
        || die "root fs lacks one of dockerd containerd runc tini modprobe ip mke2fs"
    chroot_umount
    rm -f "$root/usr/sbin/policy-rc.d"

    # Guest identity and runtime files are written at boot by pinata-init (tmpfs overlay).
    echo pinata >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    : >"$root/etc/machine-id"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tpinata\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    : >"$root/etc/fstab"
    # Keep future apt runs lean too.
    cat >"$root/etc/dpkg/dpkg.cfg.d/01-pinata-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    # Shrink: docs, man pages, locales, apt lists and caches, logs.
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
           "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/linda \
           "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
           "$root"/var/cache/apt/archives/partial/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
           "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history "$root"/debootstrap
    mkdir -p "$root/var/lib/docker" "$root/var/lib/containerd" "$root/run" "$root/newroot" "$root/mnt"
    # Debian installs dockerd in /usr/sbin; make /usr/bin/dockerd work too.
    [ -e "$root/usr/bin/dockerd" ] || ln -s ../sbin/dockerd "$root/usr/bin/dockerd"

    # Modules inside the root too, so `modprobe` works in the guest.
    local gmod="$root/lib/modules/$KVER" f
    mkdir -p "$gmod"
    cp -a "$dst/modules/." "$gmod/"
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ -f "$work/kroot/lib/modules/$KVER/$f" ] && cp "$work/kroot/lib/modules/$KVER/$f" "$gmod/"
    done
    depmod -b "$root" "$KVER"
    stage "rootfs: configured and stripped ($(du -sh "$root" | cut -f1))"

    # ext4 image: contents + ~15%, no journal (read-only lower layer of an overlay).
    local kib inodes size_kib
    kib=$(du -s --block-size=1K "$root" | cut -f1)
    inodes=$(find "$root" | wc -l)
    size_kib=$(((kib * 115 / 100) + (inodes * 256 / 1024) + 16384))
    mke2fs -q -t ext4 -L pinata-root -O ^has_journal -m 0 -N $((inodes + inodes / 10 + 1024)) \
        -E root_owner=0:0 -d "$root" "$dst/root.img" "${size_kib}K" >/dev/null \
        || die "mke2fs -d failed"
    stage "rootfs: root.img $((size_kib / 1024)) MiB"
}

build_base() {
    local tmp
    tmp=$(mktemp -d "$BASES/.tmp.$KEY.XXXXXX")
    TMPDIRS+=("$tmp")
    local stagedir="$tmp/base" work="$tmp/work"
    mkdir -p "$stagedir" "$work"
    # Unpacking thousands of files (debootstrap/dpkg fsyncs) is much faster on tmpfs.
    if [ "${PINATA_BUILD_TMPFS:-1}" = 1 ] && mount -t tmpfs -o size=6g,mode=0755 pinata-build "$work" 2>/dev/null; then
        MOUNTS+=("$work")
    fi
    build_kernel "$work" "$stagedir"
    build_modules "$work" "$stagedir"
    build_rootfs "$work" "$stagedir"
    {
        echo "key=$KEY"
        echo "kernel_package=$KERNEL_PKG $KERNEL_PKG_VERSION"
        echo "kernel_release=$KVER"
        echo "suite=$SUITE mirror=$MIRROR upgrade=$UPGRADE iptables=$IPTABLES_MODE"
        echo "packages=${PACKAGES[*]}"
        echo "built=$(date -u +%FT%TZ)"
    } >"$stagedir/build-info"
    write_manifest "$stagedir"
    rm -rf "$BASE"
    mv -T "$stagedir" "$BASE"     # atomic: same filesystem
    if mountpoint -q "$work"; then umount "$work"; MOUNTS=(); fi
    rm -rf --one-file-system "$tmp"
    stage "base: MANIFEST written, moved into place"
    stat_snapshot "$BASE" >"$BASES/.$KEY.verified"
}

# ---------------------------------------------------------------------------- base: ensure
# Stale temp dirs of interrupted builds (not ours: we hold the lock).
for stale in "$BASES"/.tmp.*; do
    [ -d "$stale" ] || continue
    umount_under "$stale"; rm -rf --one-file-system "$stale"
done
if [ -d "$BASE" ]; then
    if verify_base "$BASE"; then
        stage "base: cached $BASE verified"
    else
        log "deleting partial/corrupt base $BASE and rebuilding"
        rm -rf --one-file-system "$BASE" "$BASES/.$KEY.verified"
    fi
fi
if [ ! -d "$BASE" ]; then
    log "building guest base $KEY (cold: a few minutes)"
    build_base
fi
touch "$BASE"   # recency for pruning
# Keep the $BASES_KEPT most recently used bases.
ls -1dt "$BASES"/*/ 2>/dev/null | sed 's:/$::' | tail -n +$((BASES_KEPT + 1)) | while read -r old; do
    [ "$old" = "$BASE" ] && continue
    log "pruning old base $old"
    rm -rf --one-file-system "$old" "$BASES/.${old##*/}.verified"
done
flock -u 9

if [ -z "$INIT" ]; then
    log "no --init given: base only ($BASE)"
    awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "guest/build: total %.2fs\n", b - a }' >&2
    echo "$BASE"
    exit 0
fi

# ---------------------------------------------------------------------------- image dir
KVER=$(cat "$BASE/kernel.release")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
link_or_copy() { # src dst (atomic replace)
    rm -f "$2.tmp"
    ln "$1" "$2.tmp" 2>/dev/null || cp --reflink=auto "$1" "$2.tmp"
    mv -f "$2.tmp" "$2"
}
rm -f "$OUT/MANIFEST"   # the image dir is inconsistent until the new MANIFEST is written
for f in vmlinux vmlinuz root.img kernel.release; do
    if ! [ "$OUT/$f" -ef "$BASE/$f" ]; then link_or_copy "$BASE/$f" "$OUT/$f"; fi
done

# initrd.img: uncompressed newc cpio, every entry root-owned, fixed mtimes.
ITMP=$(mktemp -d "$OUT/.initrd.XXXXXX")
TMPDIRS+=("$ITMP")
IROOT="$ITMP/root"
mkdir -p "$IROOT"/{dev,proc,sys,run,newroot,mnt,etc/pinata} "$IROOT/lib/modules/$KVER"
install -m 0755 "$INIT" "$IROOT/init"
cp -al "$BASE/modules/." "$IROOT/lib/modules/$KVER/" 2>/dev/null || cp -a "$BASE/modules/." "$IROOT/lib/modules/$KVER/"
sed "s|^|/lib/modules/$KVER/|" "$BASE/modules.list" >"$IROOT/etc/pinata/modules.list"
(cd "$IROOT" && find . -mindepth 1 -printf '%P\n' | sort \
    | cpio -o -H newc -R 0:0 --reproducible --quiet) >"$ITMP/initrd.img"
mv -f "$ITMP/initrd.img" "$OUT/initrd.img"

# MANIFEST: base files reuse the base's (verified) hashes; initrd.img is hashed fresh.
{
    for f in initrd.img kernel.release root.img vmlinux vmlinuz; do
        if [ "$f" = initrd.img ]; then
            (cd "$OUT" && sha256sum initrd.img)
        else
            awk -v f="$f" '{ n = $0; sub(/^[^ ]+  /, "", n) } n == f { print; found = 1 } END { exit !found }' "$BASE/MANIFEST" \
                || die "base MANIFEST lacks $f"
        fi
    done
} >"$OUT/MANIFEST.tmp"
mv -f "$OUT/MANIFEST.tmp" "$OUT/MANIFEST"
stage "image: $OUT assembled (initrd.img $(du -h "$OUT/initrd.img" | cut -f1), kernel $KVER)"
awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "guest/build: total %.2fs\n", b - a }' >&2
echo "$OUT"
