#!/usr/bin/env bash
# End to end (issue 6): pinata-net and port forwarding with the real docker CLI.
#   1. docker run -d -p 8080:80 (busybox httpd, FROM scratch) -> curl on the host's 127.0.0.1;
#      after docker rm -f the port is free; a host port in use fails `docker run -p` with why.
#   2. From a container: TCP to a server on the host's 127.0.0.1 via host.docker.internal, a
#      UDP exchange with the host, a UDP port published back, and a DNS lookup of a name only
#      the host's /etc/hosts knows.
#   3. 100 concurrent connections through a published port, 10 MiB each, arrive intact.
#   4. Malformed port specs and ctl writes get errors; the backend keeps serving.
source "$(dirname "$0")/lib.sh"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

expect_exit 0 "pinata start" "$PINATA" start

# An image with busybox, our static test peer and 10 MiB of random data to serve.
img="$WORK/img"
mkdir -p "$img/www"
cp "$(command -v busybox)" "$img/busybox"
cp "$BUILD/src/net/net-tool" "$img/net-tool"
echo "hello from a container" >"$img/www/index.html"
head -c $((10 << 20)) /dev/urandom >"$img/www/blob"
want=$(sha256sum <"$img/www/blob" | cut -d' ' -f1)
cat >"$img/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
ADD net-tool /bin/net-tool
ADD www /www
CMD ["httpd","-f","-p","80","-h","/www"]
DOCKERFILE
expect_exit 0 "build a FROM-scratch busybox httpd image" docker build -q -t pinata-net-test "$img"

# --- 1. a published port --------------------------------------------------------------------
P=$(free_port)
expect_exit 0 "docker run -d -p $P:80" docker run -d --name web -p "$P:80" pinata-net-test
page=""
for _ in $(seq 1 50); do page=$(curl -s -m 5 "http://127.0.0.1:$P/" || true); [ -n "$page" ] && break; sleep 0.2; done
check "curl http://127.0.0.1:$P/ on the host returns the page" test "$page" = "hello from a container"
check "the host listener is on 127.0.0.1 only (external-bind is off)" \
  sh -c "ss -Hltn 'sport = :$P' | grep -q '127.0.0.1:$P' && ! ss -Hltn 'sport = :$P' | grep -q '0.0.0.0:$P'"

# --- 3. 100 concurrent connections × 10 MiB ----------------------------------------------------
mkdir -p "$WORK/got"
for i in $(seq 1 100); do curl -s -m 300 -o "$WORK/got/$i" "http://127.0.0.1:$P/blob" & done
wait
intact=0
for i in $(seq 1 100); do
  [ "$(sha256sum <"$WORK/got/$i" | cut -d' ' -f1)" = "$want" ] && intact=$((intact + 1))
done
check "100 concurrent 10 MiB downloads through the published port arrive intact ($intact/100)" test "$intact" = 100
rm -rf "$WORK/got"

expect_exit 0 "docker rm -f" docker rm -f web
for _ in $(seq 1 25); do port_free "$P" && break; sleep 0.2; done
check "... frees host port $P" port_free "$P"
expect_exit 0 "the port can be published again" docker run -d --name web2 -p "$P:80" pinata-net-test
docker rm -f web2 >/dev/null

# A host port already in use: docker run -p fails, saying so.
B=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$B)); s.listen(); time.sleep(120)" &
blocker=$!
sleep 0.5
expect_exit 125 "docker run -p on a host port in use fails" docker run --rm -p "$B:80" pinata-net-test
check "... with the reason" contains "$out" "address already in use\|Address already in use"
kill $blocker 2>/dev/null || true

# --- 2. from a container to the host ---------------------------------------------------------
H=$(free_port)
mkdir -p "$WORK/hostweb" && echo "hello from the host" >"$WORK/hostweb/index.html"
python3 -m http.server "$H" --bind 127.0.0.1 --directory "$WORK/hostweb" >/dev/null 2>&1 &
hostweb=$!
U=$(free_port)
python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', $U))
while True:
    d, a = s.recvfrom(65535); s.sendto(b'echo:' + d, a)" &
udpecho=$!
sleep 1
expect_exit 0 "a container reaches the host's 127.0.0.1 via host.docker.internal (TCP)" \
  docker run --rm pinata-net-test wget -q -O - "http://host.docker.internal:$H/"
check "... and gets the host's page" test "$out" = "hello from the host"
expect_exit 0 "host.docker.internal resolves to the host (slirp/host)" \
  docker run --rm pinata-net-test nslookup host.docker.internal
check "... 192.168.65.1" contains "$out" "192.168.65.1"
expect_exit 0 "a UDP exchange with a server on the host's 127.0.0.1" \
  docker run --rm pinata-net-test net-tool udp 192.168.65.1 "$U" ping-over-udp
check "... gets the answer" test "$out" = "echo:ping-over-udp"
kill $hostweb $udpecho 2>/dev/null || true

name="pinata-net-test-$$.example"
cp /etc/hosts "$WORK/hosts.orig"
trap 'cp "$WORK/hosts.orig" /etc/hosts; cleanup' EXIT
echo "10.11.12.13 $name" >>/etc/hosts
expect_exit 0 "a DNS lookup of a name only the host's /etc/hosts knows" \
  docker run --rm pinata-net-test nslookup "$name"
check "... answers the host's address for it" contains "$out" "10.11.12.13"
cp "$WORK/hosts.orig" /etc/hosts
expect_exit 1 "a name nobody knows does not resolve" docker run --rm pinata-net-test nslookup "no-such-host-$$.invalid"

# A published UDP port.
UP=$(free_port)
expect_exit 0 "docker run -d -p $UP:$UP/udp (an echo server)" \
  docker run -d --name uecho -p "$UP:$UP/udp" pinata-net-test net-tool udp-echo "$UP"
expect_exit 0 "a UDP datagram to the published port comes back" python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
for _ in range(10):
    s.sendto(b'hello', ('127.0.0.1', $UP))
    try:
        print(s.recvfrom(100)[0].decode()); sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)"
check "... echoed by the container" test "$out" = "echo:hello"
docker rm -f uecho >/dev/null

# --- 4. malformed specs and ctl writes --------------------------------------------------------
in_ports() { docker run --rm -v /run/pinata/port:/port pinata-net-test sh -c "$1"; }
expect_exit 1 "mkdir of a malformed spec is refused" in_ports "mkdir /port/tcp:127.0.0.1:notaport:tcp:1.2.3.4:80"
check "... with EINVAL" contains "$out" "Invalid argument"
S=$(free_port)
spec="tcp:127.0.0.1:$S:tcp:172.17.0.250:80"
expect_exit 0 "a ctl write of garbage" in_ports "mkdir /port/$spec && net-tool ctl /port/$spec/ctl garbage"
check "... reads back ERROR" contains "$out" "^ERROR malformed spec"
expect_exit 0 "a ctl write of another spec than the directory's" \
  in_ports "mkdir /port/$spec && net-tool ctl /port/$spec/ctl tcp:127.0.0.1:1:tcp:1.2.3.4:80"
check "... reads back ERROR" contains "$out" "^ERROR spec written to ctl does not match"
expect_exit 0 "the right spec still works afterwards" in_ports "mkdir /port/$spec && net-tool ctl /port/$spec/ctl $spec"
check "... OK with the bound address" contains "$out" "^OK 127.0.0.1:$S"
P2=$(free_port)
expect_exit 0 "and docker run -p still publishes" docker run -d --name web3 -p "$P2:80" pinata-net-test
page=""
for _ in $(seq 1 50); do page=$(curl -s -m 5 "http://127.0.0.1:$P2/" || true); [ -n "$page" ] && break; sleep 0.2; done
check "... and serves" test "$page" = "hello from a container"
docker rm -f web3 >/dev/null
finish
