#!/usr/bin/env bash
# Integration: the Docker API and other streams over pinata-vsock with a real guest.
#   - 200 concurrent Docker API requests through docker.sock all succeed;
#   - 1 GiB each way through a forward (host -> guest) and a guest connect (guest -> host),
#     every byte checked, while a slow reader on another connection holds its credit;
#   - a guest process that dies mid-stream gives the host EOF/reset and the backend stays up;
#   - malformed connect handshakes are rejected and the backend keeps serving.
# Guest peers run in containers: vsock is not namespaced, so a container's AF_VSOCK socket is
# the VM's.
source "$(dirname "$0")/../e2e/lib.sh"
TOOL="$BUILD/src/vsock/vsock-tool"
GIB=$((1 << 30))
VS="$PINATA_HOME/vsock"

mkdir -p "$PINATA_HOME"
echo "guest_forwards=2376;5000" >"$PINATA_HOME/settings"
expect_exit 0 "pinata start" "$PINATA" start
check "docker.sock leads to pinata-vsock's forward of port 2376" \
  test "$(readlink "$PINATA_HOME/docker.sock")" = "$VS/00000003.00000948"
check "the hypervisor forwards nothing over TCP" sh -c "! grep -q hostfwd '$PINATA_HOME/vm.args'"

img="$WORK/tool"
mkdir -p "$img"
cp "$TOOL" "$img/vsock-tool"
printf 'FROM scratch\nADD vsock-tool /vsock-tool\n' >"$img/Dockerfile"
expect_exit 0 "build the guest peer image" docker build -q -t pinata-vsock-tool "$img"

# --- 200 concurrent API requests ----------------------------------------------------------
pids=()
for i in $(seq 1 200); do
  curl -sf --max-time 120 --unix-socket "$PINATA_HOME/docker.sock" http://d/_ping >"$WORK/p.$i" & pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
check "200 concurrent API requests all succeed" test "$bad" = 0 -a "$(cat "$WORK"/p.* | tr -d '\n')" = "$(printf 'OK%.0s' $(seq 1 200))"

# --- a slow reader holding its credit ------------------------------------------------------
docker run -d --name src --rm pinata-vsock-tool /vsock-tool serve vsock:3:5001 source $((64 << 20)) >/dev/null
sleep 2
python3 - "$VS/connect" >"$WORK/slow.out" 2>&1 <<'PY' &
import socket, sys, time, hashlib
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"00000003.00001389\n")    # guest port 5001: a 64 MiB source
s.settimeout(300)
time.sleep(45)                         # read nothing while the big streams run
n = 0
while True:
    b = s.recv(1 << 20)
    if not b: break
    n += len(b)
print("slow-reader bytes=%d" % n)
PY
slow_pid=$!

# --- 1 GiB host -> guest through the forward of port 5000 ---------------------------------
docker run -d --name sink pinata-vsock-tool /vsock-tool serve vsock:3:5000 sink $GIB >/dev/null
sleep 2
expect_exit 0 "1 GiB host -> guest through a forward" timeout 600 "$TOOL" client "unix:$VS/00000003.00001388" send $GIB
sleep 1
check "... arrived intact in the guest" sh -c "docker logs sink | grep -q 'RESULT serve-sink bytes=$GIB ok=1'"
docker rm -f sink >/dev/null

# --- 1 GiB guest -> host: the guest connects to (2, 6000) ----------------------------------
"$TOOL" serve "unix:$VS/00000002.00001770" sink $GIB >"$WORK/host-sink.out" 2>&1 &
host_sink=$!
sleep 1
expect_exit 0 "1 GiB guest -> host" timeout 600 docker run --rm pinata-vsock-tool /vsock-tool client vsock:2:6000 send $GIB
sleep 1
kill "$host_sink" 2>/dev/null || true
check "... arrived intact on the host" grep -q "RESULT serve-sink bytes=$GIB ok=1" "$WORK/host-sink.out"

wait "$slow_pid" || true
check "the slow reader got its whole stream afterwards" grep -q "slow-reader bytes=$((64 << 20))" "$WORK/slow.out"

# --- a guest process dies mid-stream --------------------------------------------------------
docker run -d --name victim pinata-vsock-tool /vsock-tool serve vsock:3:5002 sink >/dev/null
sleep 2
timeout 120 "$TOOL" client "unix:$VS/connect@3.5002" send $((8 << 30)) >"$WORK/victim.out" 2>&1 &
victim_client=$!
sleep 3
docker kill victim >/dev/null
rc=0
wait "$victim_client" || rc=$?
check "the host side sees the stream end when the guest process dies (exit $rc, not a hang)" test "$rc" != 124 -a "$rc" != 0
docker rm -f victim >/dev/null 2>&1 || true
expect_exit 0 "the backend still serves after that" docker version --format '{{.Server.Version}}'

# --- malformed handshakes --------------------------------------------------------------------
hs() {  # send $1 to DIR/connect; print what the backend did
  python3 - "$VS/connect" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
s.shutdown(socket.SHUT_WR)
try:
    print("closed" if s.recv(1) == b"" else "open")
except ConnectionResetError:
    print("closed")
except socket.timeout:
    print("timeout")
PY
}
for bad_hs in 'garbage' '00000003.0000094' '00000003x00000948\n' '00000004.00000948\n' 'zzzzzzzz.00000948\n' '00000003.00000948'; do
  check "handshake '$bad_hs' is rejected" test "$(hs "$bad_hs")" = closed
done
expect_exit 0 "and docker.sock still works" docker info --format '{{.ServerVersion}}'

finish
