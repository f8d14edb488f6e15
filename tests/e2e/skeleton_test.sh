#!/usr/bin/env bash
# End to end: `pinata start` from nothing gives a Docker Engine that the stock docker CLI uses
# (build, run, logs, exec, attach, rm), images survive stop/start, bad input is refused clearly,
# and the hypervisor dies with pinatad.
source "$(dirname "$0")/lib.sh"

kernel_release=$(cat "$PINATA_GUEST_DIR/kernel.release")

# --- 1. start from nothing ------------------------------------------------------------------
expect_exit 0 "pinata start from nothing" "$PINATA" start
start_out=$out
check "start prints how to use the socket" contains "$start_out" "DOCKER_HOST=unix://$PINATA_HOME/docker.sock"
check "docker.sock is a socket with mode 0600" test "$(stat -L -c %a:%F "$PINATA_HOME/docker.sock")" = "600:socket"
check "the socket directory is private" test "$(stat -c %a "$PINATA_HOME/vsock")" = 700
check "vm.args holds the hypervisor command line" grep -q -- "-kernel $PINATA_GUEST_DIR/vmlinux" "$PINATA_HOME/vm.args"
check "the log says which accelerator and why" grep -Eq "using (TCG|KVM)" "$PINATA_HOME/log/pinatad.log"
check "the health check logged its progress" grep -q "Docker is responding" "$PINATA_HOME/log/pinatad.log"

expect_exit 0 "docker version" docker version
check "docker version reports the guest's server" contains "$out" "Server:"
expect_exit 0 "docker info" docker info --format '{{.KernelVersion}}|{{.OperatingSystem}}|{{.Name}}'
check "docker info shows the guest kernel ($kernel_release), not the host's ($(uname -r))" \
  contains "$out" "^$kernel_release|"
check "docker info shows the guest OS" contains "$out" "Debian GNU/Linux 12"
check "docker info shows the guest hostname" contains "$out" "|pinata$"

expect_exit 0 "a second pinata start says it is running" "$PINATA" start
check "... and says so" contains "$out" "already running"
expect_exit 0 "pinata status while running" "$PINATA" status
check "status says running" contains "$out" "state=running"

# --- 2. the classic FROM scratch build -------------------------------------------------------
ctx="$WORK/hello"
mkdir -p "$ctx"
printf 'hi' >"$ctx/hello"
printf 'FROM scratch\nADD hello /\nCMD ["/hello"]\n' >"$ctx/Dockerfile"
expect_exit 0 "docker build of FROM scratch / ADD hello" docker build -t pinata-e2e-hello "$ctx"

# --- 3. a static busybox image: run, run -d, logs, exec, attach, rm -f -----------------------
bb="$WORK/busybox"
mkdir -p "$bb"
cp /bin/busybox "$bb/busybox"
printf 'FROM scratch\nADD busybox /busybox\n' >"$bb/Dockerfile"
expect_exit 0 "docker build of a static busybox image" docker build -t pinata-e2e-busybox "$bb"
expect_exit 0 "docker run --rm IMG /busybox echo hi" docker run --rm pinata-e2e-busybox /busybox echo hi
check "... prints hi" test "$out" = "hi"
expect_exit 0 "docker run -d" docker run -d --name e2e-bg pinata-e2e-busybox /busybox sh -c 'echo started; exec /busybox sleep 1000'
sleep 2
expect_exit 0 "docker logs" docker logs e2e-bg
check "... shows the container's output" contains "$out" "started"
expect_exit 0 "docker exec" docker exec e2e-bg /busybox echo exec-ok
check "... runs in the container" test "$out" = "exec-ok"
expect_exit 0 "docker run -i streams stdin and stdout (attach)" \
  sh -c 'printf "line1\nline2\n" | docker run -i --rm pinata-e2e-busybox /busybox wc -l'
check "... all of stdin arrived and the reply came back" test "$(echo $out)" = "2"
expect_exit 0 "docker rm -f" docker rm -f e2e-bg
expect_exit 0 "docker ps after rm" docker ps -aq --filter name=e2e-bg
check "... the container is gone" test -z "$out"

# The serial console is a shell on the guest.
expect_exit 0 "pinata console runs a command in the guest" \
  sh -c "printf 'echo console-\$((40+2))\n' | '$PINATA' console"
check "... and shows its output" contains "$out" "console-42"
expect_exit 0 "nothing listens on TCP in the guest (the API is on vsock)" \
  sh -c "printf 'echo tcp-listeners=\$(ss -Hltn | wc -l)\n' | '$PINATA' console"
check "... none" contains "$out" "tcp-listeners=0"
check "no pinata process listens on TCP on the host" \
  sh -c "! ss -Hltnp | grep -E 'qemu-system|pinata'"

# Many concurrent API connections through docker.sock.
pids=()
for i in $(seq 1 40); do
  curl -sf --unix-socket "$PINATA_HOME/docker.sock" http://d/_ping >"$WORK/ping.$i" & pids+=($!)
done
conc_fail=0
for p in "${pids[@]}"; do wait "$p" || conc_fail=$((conc_fail + 1)); done
check "40 concurrent API requests all succeed" test "$conc_fail" = 0 -a "$(cat "$WORK"/ping.* | tr -d '\n')" = "$(printf 'OK%.0s' $(seq 1 40))"

# --- 4. stop, start: images survive ------------------------------------------------------------
expect_exit 0 "pinata stop" "$PINATA" stop
check "stop shut the guest down cleanly (no kill)" test "$out" = "$(printf 'Stopping pinata...\npinata stopped')"
check "the guest unmounted the data disk cleanly" grep -q "unmounted data disk cleanly" "$PINATA_HOME/console-ring"
check "docker.sock is gone after stop" test ! -e "$PINATA_HOME/docker.sock"
expect_exit 3 "pinata status when stopped" "$PINATA" status
expect_exit 0 "pinata stop when stopped" "$PINATA" stop
check "... says it is not running" contains "$out" "not running"

# A stale pid file (pinatad died without cleaning up) does not block the next start.
echo 999999 >"$PINATA_HOME/pinatad.pid"
expect_exit 0 "pinata start with a stale pid file" "$PINATA" start
check "... reports the stale pid file" contains "$out" "removing stale pid file"
expect_exit 0 "docker image ls after restart" docker image ls --format '{{.Repository}}'
check "the built image survived stop/start" contains "$out" "pinata-e2e-hello"
check "the busybox image survived stop/start" contains "$out" "pinata-e2e-busybox"
expect_exit 0 "and still runs" docker run --rm pinata-e2e-busybox /busybox echo again
check "... prints again" test "$out" = "again"
check "the data disk was not reformatted" test "$(grep -c 'formatting data disk' "$PINATA_HOME/console-ring")" = 1

# --- 5. bad input ----------------------------------------------------------------------------
expect_exit 2 "pinata start --cpus 0 is refused" "$PINATA" start --cpus 0
check "... saying what is accepted" contains "$out" "must be an integer from 1 to 64"
expect_exit 2 "an unknown command is refused" "$PINATA" frobnicate

other="$WORK/other"
expect_exit 1 "a missing guest image" env PINATA_HOME="$other" PINATA_GUEST_DIR="$WORK/no-such-image" "$PINATA" start
check "... says there is no guest image" contains "$out" "no guest image"
bad_image="$WORK/bad-image"
mkdir -p "$bad_image"
for f in vmlinux initrd.img kernel.release MANIFEST; do ln -s "$PINATA_GUEST_DIR/$f" "$bad_image/$f"; done
head -c 1048576 "$PINATA_GUEST_DIR/root.img" >"$bad_image/root.img"   # a partial root image
expect_exit 1 "a corrupt guest image" env PINATA_HOME="$other" PINATA_GUEST_DIR="$bad_image" "$PINATA" start
check "... is refused as corrupt, not booted" contains "$out" "root.img is corrupt"
check "... and no hypervisor was started" test ! -e "$other/vm.args"
expect_exit 1 "PINATA_HOME that cannot be created" env PINATA_HOME=/proc/pinata-home "$PINATA" start
check "... says so" contains "$out" "cannot create /proc/pinata-home"
mkdir -p "$WORK/ro"
if mount --bind "$WORK/ro" "$WORK/ro" 2>/dev/null && mount -o remount,bind,ro "$WORK/ro" 2>/dev/null; then
  expect_exit 1 "an unwritable PINATA_HOME" env PINATA_HOME="$WORK/ro" "$PINATA" start
  check "... says it is not writable" contains "$out" "is not writable"
  umount "$WORK/ro"
else
  not_ok "could not make a read-only bind mount to test an unwritable PINATA_HOME"
fi

# --- 6. if pinatad dies, the hypervisor dies with it -----------------------------------------
daemon_pid=$(cat "$PINATA_HOME/pinatad.pid")
qemu_pid=$("$PINATA" status | sed -n 's/.*hypervisor_pid=\([0-9]*\).*/\1/p')
check "status names the hypervisor" test -n "$qemu_pid"
kill -9 "$daemon_pid"
for _ in $(seq 1 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
check "killing pinatad kills the hypervisor" sh -c "! kill -0 $qemu_pid 2>/dev/null"
expect_exit 3 "status after pinatad died" "$PINATA" status

finish
