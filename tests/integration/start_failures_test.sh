#!/usr/bin/env bash
# Integration: `pinata start` failure paths with a real QEMU — a guest that cannot boot and a
# guest that does not answer in time — each reported with the reason and the last console
# lines, leaving nothing running.
source "$(dirname "$0")/../e2e/lib.sh"

# A kernel QEMU cannot load, in an image whose MANIFEST is consistent: the VM exits at once.
img="$WORK/bad-kernel"
mkdir -p "$img"
head -c 4096 /dev/urandom >"$img/vmlinux"
ln -s "$PINATA_GUEST_DIR/initrd.img" "$img/initrd.img"
ln -s "$PINATA_GUEST_DIR/root.img" "$img/root.img"
(cd "$img" && sha256sum vmlinux >MANIFEST && grep -E ' (initrd|root)\.img$' "$PINATA_GUEST_DIR/MANIFEST" >>MANIFEST)
expect_exit 1 "a VM that cannot boot fails the start" env PINATA_GUEST_DIR="$img" "$PINATA" start --timeout 60
check "... with the reason" contains "$out" "the VM exited before Docker responded"
check "... and points at the logs" contains "$out" "pinata logs"
check "the hypervisor's own error is in pinatad's log" grep -qi "kernel" "$PINATA_HOME/log/pinatad.log"
expect_exit 3 "nothing is left running" "$PINATA" status
check "no stale sockets are left" test ! -e "$PINATA_HOME/pinatad.sock" -a ! -e "$PINATA_HOME/docker.sock"

# The real guest, but less time than it needs: timeout, console lines, VM stopped.
expect_exit 1 "a start that times out fails" "$PINATA" start --timeout 3
check "... saying it timed out" contains "$out" "Docker did not respond within 3 s; stopped the VM"
check "... with the last console lines" contains "$out" "Last console lines"
for _ in $(seq 1 100); do "$PINATA" status >/dev/null 2>&1 || break; sleep 0.2; done
expect_exit 3 "the timed-out VM was stopped" "$PINATA" status
expect_exit 0 "pinata logs shows pinatad's log" "$PINATA" logs
check "... with the health check lines" contains "$out" "Docker is not responding: waiting 0.5s"
expect_exit 0 "pinata logs --console shows the console" "$PINATA" logs --console
check "... with the guest's boot messages" contains "$out" "Linux version"

expect_exit 2 "memory beyond the host is refused" "$PINATA" start --memory 100000
check "... saying what is accepted" contains "$out" "must be an integer from 1 to 64"
expect_exit 2 "a bad option is refused" "$PINATA" start --frobnicate
expect_exit 2 "logs with a bad option is refused" "$PINATA" logs --bogus

finish
