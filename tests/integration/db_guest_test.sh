#!/usr/bin/env bash
# Integration: the configuration database with a real guest and the Linux 9p client.
#   - pinata-init mounts the database over vsock (9P, trans=fd) and applies it at boot:
#     etc/hostname, etc/sysctl.conf, etc/docker/daemon.json, insecure-registry;
#   - from a container (the guest's kernel client): cat ro/.../memory, a transaction written
#     with echo (one commit), a bad value refused, a conflicting transaction refused, and
#     head.live reporting a commit made on the host;
#   - pinatad follows the database: a daemon.json change restarts dockerd in the guest, a
#     memory/ncpu change restarts the VM with the new size.
source "$(dirname "$0")/../e2e/lib.sh"
K=com.docker.driver.amd64-linux
DB="$PINATA_HOME/database"
M=/db/branch/master
g() { git -C "$DB" "$@"; }

# Settings made before the first start are applied at boot.
mkdir -p "$PINATA_HOME"
expect_exit 0 "set the host name before starting" "$PINATA" set hostname pinata-db-test
expect_exit 0 "set a sysctl" "$PINATA" set sysctl "vm.max_map_count = 262144"
expect_exit 0 "set an insecure registry" "$PINATA" set insecure-registry "registry.test:5000"
expect_exit 0 "set daemon.json" sh -c "echo '{\"labels\": [\"pinata-db=1\"]}' | '$PINATA' set daemon -"
expect_exit 0 "pinata start" "$PINATA" start

bb="$WORK/bb"
mkdir -p "$bb"
cp "$(command -v busybox)" "$bb/busybox"
printf 'FROM scratch\nADD busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$bb/Dockerfile"
expect_exit 0 "build a busybox image" docker build -q -t pinata-db-bb "$bb"
# A shell in a container that sees the guest's mount of the database at /db.
in_guest() { docker run --rm -v /run/pinata/database:/db pinata-db-bb sh -c "$1"; }

check "the guest's host name comes from the database" \
  test "$(docker info --format '{{.Name}}')" = pinata-db-test
check "the sysctl was applied" test "$(in_guest 'cat /proc/sys/vm/max_map_count')" = 262144
check "daemon.json reached dockerd" contains "$(docker info --format '{{.Labels}}')" "pinata-db=1"
check "insecure-registry reached dockerd" \
  contains "$(docker info --format '{{json .RegistryConfig.IndexConfigs}}')" "registry.test:5000"

# --- the tree, read and written with ordinary shell tools -----------------------------------
expect_exit 0 "cat ro/.../memory through the Linux 9p client" in_guest "cat $M/ro/$K/memory"
check "... is the stored value" test "$out" = 2
expect_exit 0 "cat head" in_guest "cat $M/head"
check "... is the branch head" test "$out" = "$(g rev-parse master)"

before=$(g rev-parse master)
expect_exit 0 "a transaction written with echo" in_guest \
  "mkdir $M/transactions/t1 && echo 'proxy.test:5000' > $M/transactions/t1/rw/$K/insecure-registry \
   && echo 'registry from the guest' > $M/transactions/t1/msg && echo commit > $M/transactions/t1/ctl \
   && cat $M/transactions/t1/ctl"
after=$(g rev-parse master)
check "... made exactly one commit" test "$(g rev-list --count "$before..$after")" = 1
check "... with the message written to msg" test "$(g log -1 --format=%s master)" = "registry from the guest"
check "... changing that key" test "$(g show master:$K/insecure-registry)" = "proxy.test:5000"
check "... and ctl says so" contains "$out" "committed $after"
check "git fsck is clean" g fsck --no-progress

expect_exit 1 "a bad value is refused (the write of commit fails)" in_guest \
  "mkdir $M/transactions/bad && echo 0 > $M/transactions/bad/rw/$K/ncpu && echo commit > $M/transactions/bad/ctl"
check "... saying why in ctl" contains "$(in_guest "cat $M/transactions/bad/ctl")" "ncpu must be an integer"
check "... and nothing was committed" test "$(g rev-parse master)" = "$after"

expect_exit 1 "a transaction whose base moved is refused" in_guest \
  "mkdir $M/transactions/a $M/transactions/b \
   && echo a.test > $M/transactions/a/rw/$K/insecure-registry \
   && echo b.test > $M/transactions/b/rw/$K/insecure-registry \
   && echo commit > $M/transactions/a/ctl && echo commit > $M/transactions/b/ctl"
check "... the first one committed, the second did not overwrite it" \
  test "$(g show master:$K/insecure-registry)" = "a.test"

# head.live: a reader in the guest sees a commit made on the host.
docker run -d --name live -v /run/pinata/database:/db pinata-db-bb \
  sh -c "while read l; do echo head \$l; done < $M/head.live" >/dev/null
sleep 3
expect_exit 0 "a change on the host (pinata set)" "$PINATA" set on-sleep none
new=$(g rev-parse master)
for _ in $(seq 1 20); do contains "$(docker logs live 2>&1)" "head $new" && break; sleep 0.5; done
check "head.live reported the new commit" contains "$(docker logs live 2>&1)" "head $new"
docker rm -f live >/dev/null

# --- pinatad follows the database -----------------------------------------------------------
expect_exit 0 "change daemon.json" sh -c "echo '{\"labels\": [\"pinata-db=2\"]}' | '$PINATA' set daemon -"
for _ in $(seq 1 60); do contains "$(docker info --format '{{.Labels}}' 2>/dev/null)" "pinata-db=2" && break; sleep 1; done
check "dockerd restarted with the new daemon.json" contains "$(docker info --format '{{.Labels}}')" "pinata-db=2"
check "... and the guest said so" contains "$("$PINATA" logs --console)" "daemon.json changed: restarting dockerd"

mem_before=$(docker info --format '{{.MemTotal}}')
expect_exit 0 "change memory and ncpu" "$PINATA" set hypervisor qemu memory=3 ncpu=1
for _ in $(seq 1 120); do
  o=$(docker info --format '{{.NCPU}} {{.MemTotal}}' 2>/dev/null) && [ "${o%% *}" = 1 ] && break
  sleep 1
done
check "the VM restarted with 1 CPU" test "$(docker info --format '{{.NCPU}}')" = 1
check "... and more memory" test "$(docker info --format '{{.MemTotal}}')" -gt "$mem_before"
check "... pinatad logged why" grep -q "restarting the VM: memory 2 -> 3 GiB, ncpu 2 -> 1" "$PINATA_HOME/log/pinatad.log"
check "... the database is mounted again" test "$(in_guest "cat $M/ro/$K/ncpu")" = 1

expect_exit 0 "pinata stop" "$PINATA" stop
finish
