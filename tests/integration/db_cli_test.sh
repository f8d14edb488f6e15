#!/usr/bin/env bash
# Integration: the configuration database from the command line (pinata list|get|set|history|
# revert), checked with the real git CLI and no pinatad running: one commit per set, no lost
# update among 20 concurrent writers, refusals that change nothing, commits made by hand picked
# up, and damaged or locked repositories reported clearly with nothing lost.
source "$(dirname "$0")/../e2e/lib.sh"

DB="$PINATA_HOME/database"
K=com.docker.driver.amd64-linux
export GIT_CONFIG_NOSYSTEM=1
g() { git -C "$DB" -c user.name=tester -c user.email=tester@localhost "$@"; }
commits() { g rev-list --count master; }
head_id() { g rev-parse master; }
# Every file of the repository with its checksum: "nothing was written" is this not changing.
snapshot() { (cd "$DB" && find .git -type f -print0 | sort -z | xargs -0 sha256sum); }

# --- reads need no database ---------------------------------------------------------------
expect_exit 0 "get works before anything was set" "$PINATA" get memory
check "... giving the default" test "$out" = 2
check "... and creates nothing" test ! -e "$DB"
expect_exit 0 "history is empty before anything was set" "$PINATA" history

# --- (a) one set, one commit -----------------------------------------------------------------
expect_exit 0 "pinata set memory 4" "$PINATA" set memory 4
check "... says what changed" contains "$out" "memory = 4 (was 2)"
check "the database holds the initial commit and exactly one more" test "$(commits)" = 2
check "... whose message says what changed" test "$(g log -1 --format=%s master)" = "set memory=4"
check "... written by pinata-db" test "$(g log -1 --format='%an <%ae>' master)" = "pinata-db <pinata-db@localhost>"
check "... changing only the memory key" test "$(g diff --name-only master~1 master)" = "$K/memory"
check "... stored with a trailing newline" test "$(g show master:$K/memory | od -An -c | tr -s ' ')" = " 4 \n"
check "git fsck is clean" g fsck --strict --no-progress --no-dangling
expect_exit 0 "pinata get memory" "$PINATA" get memory
check "... is 4" test "$out" = 4

n=$(commits)
expect_exit 0 "setting the current value again" "$PINATA" set memory 4
check "... says unchanged" contains "$out" "memory is already 4: unchanged"
check "... and makes no commit" test "$(commits)" = "$n"

expect_exit 0 "set hypervisor with parameters" "$PINATA" set hypervisor qemu memory=6 ncpu=1
check "... is one commit" test "$(commits)" = $((n + 1))
check "... naming the keys that changed" test "$(g log -1 --format=%s master)" = "set memory=6 ncpu=1"
check "... both keys in that one commit" test "$(g diff --name-only master~1 master | tr '\n' ' ')" = "$K/memory $K/ncpu "

printf '{\n  "debug": true,\n  "registry-mirrors": ["https://mirror.example"]\n}\n' >"$WORK/daemon.json"
expect_exit 0 "set daemon @file" "$PINATA" set daemon @"$WORK/daemon.json"
check "... stores the file as given" test "$(g show master:$K/etc/docker/daemon.json)" = "$(cat "$WORK/daemon.json")"
expect_exit 0 "set daemon from standard input" sh -c "echo '{\"debug\":false}' | '$PINATA' set daemon -"
expect_exit 0 "get daemon" "$PINATA" get daemon
check "... prints the JSON" test "$out" = '{"debug":false}'
expect_exit 0 "set network with a parameter" "$PINATA" set network slirp external-bind=true
check "... stored under slirp/" test "$(g show master:$K/slirp/external-bind)" = true

# --- (c) refusals change nothing --------------------------------------------------------------
h=$(head_id)
expect_exit 2 "invalid JSON for daemon is refused" sh -c "echo '{\"debug\": tru}' | '$PINATA' set daemon -"
check "... saying why" contains "$out" "daemon must be a JSON object: line 1, column"
expect_exit 2 "ncpu 0 is refused" "$PINATA" set ncpu 0
check "... saying what is accepted" contains "$out" 'pinata: ncpu must be an integer from 1 to 64, got "0"'
expect_exit 2 "an unknown key is refused" "$PINATA" set nosuchkey x
check "... listing the known ones" contains "$out" 'unknown setting "nosuchkey"; known settings: daemon,'
expect_exit 2 "an unsupported hypervisor is refused" "$PINATA" set hypervisor native
check "... saying it is not supported on Linux" contains "$out" 'hypervisor "native" is not yet supported on Linux; accepted: qemu'
expect_exit 2 "a bad parameter refuses the whole set" "$PINATA" set hypervisor qemu memory=8 ncpu=abc
expect_exit 2 "slirp/host outside slirp/docker's /24 is refused" "$PINATA" set slirp/host 10.9.9.1
check "... explaining the rule" contains "$out" "same /24"
expect_exit 2 "a read-only key is refused" "$PINATA" set schema-version 2
check "no refusal wrote a commit" test "$(head_id)" = "$h"
expect_exit 0 "... and memory is still 6" "$PINATA" get memory
check "... (it is)" test "$out" = 6

# --- a commit made with git by hand is picked up ------------------------------------------------
g reset -q --hard
echo 12 >"$DB/$K/memory"
g commit -q -am "memory by hand"
expect_exit 0 "a value committed with git is read back" "$PINATA" get memory
check "... as 12" test "$out" = 12
expect_exit 0 "history of memory" "$PINATA" history memory
check "... shows the hand-made commit" contains "$out" "memory by hand"
check "... and pinata's" contains "$out" "set memory=6 ncpu=1"
check "... but not commits of other keys" bash -c '! grep -q external-bind <<<"$1"' _ "$out"

# --- revert -------------------------------------------------------------------------------------
expect_exit 0 "set ncpu 3" "$PINATA" set ncpu 3
c=$(g rev-parse --short=8 master)
expect_exit 0 "revert it" "$PINATA" revert "$c"
check "... puts ncpu back" test "$("$PINATA" get ncpu)" = 1
check "... in a new commit" test "$(g log -1 --format=%s master)" = "Revert \"set ncpu=3\""
expect_exit 0 "set memory 16" "$PINATA" set memory 16
m=$(g rev-parse --short=8 master)
expect_exit 0 "set memory 20" "$PINATA" set memory 20
h=$(head_id)
expect_exit 1 "reverting a change made over since is a conflict" "$PINATA" revert "$m"
check "... naming the key" contains "$out" "$K/memory was changed again"
check "... and writes nothing" test "$(head_id)" = "$h"
expect_exit 2 "reverting an unknown commit is refused" "$PINATA" revert 0123abcd

# --- list -----------------------------------------------------------------------------------------
expect_exit 0 "pinata list" "$PINATA" list
check "... shows hypervisor with its parameters" contains "$out" "^\*  hypervisor = qemu (memory=20, ncpu=1)$"
check "... its options" contains "$out" "^ >  native: pinata's own KVM microVM; not yet supported on Linux$"
check "... descriptions indented" contains "$out" "^   The hypervisor that runs the Docker VM"
check "... no internal keys" bash -c "! grep -q 'schema-version' <<<\"\$1\"" _ "$out"
check "... no escape codes when not on a terminal" bash -c "! grep -q $'\e' <<<\"\$1\"" _ "$out"
"$PINATA" list --json >"$WORK/list.json"
check "pinata list --json is valid JSON" python3 -m json.tool "$WORK/list.json" /dev/null
check "... with each setting's key, value, params, description and options" python3 - "$WORK/list.json" <<'PY'
import json, sys
items = {i["key"]: i for i in json.load(open(sys.argv[1]))}
h = items["hypervisor"]
assert h["value"] == "qemu" and h["params"] == {"memory": "20", "ncpu": "1"}, h
assert [o["value"] for o in h["options"]] == ["native", "qemu"], h
assert h["options"][0]["supported"] is False and h["description"]
assert items["daemon"]["value"] == '{"debug":false}'
assert "schema-version" not in items and "memory" not in items
PY
"$PINATA" list --json --all >"$WORK/all.json"
check "list --all --json includes internal keys" python3 -c "import json,sys; assert any(i['key']=='schema-version' for i in json.load(open(sys.argv[1])))" "$WORK/all.json"

# --- (b) 20 concurrent writers, 10 sets each: exactly 200 commits, nothing lost -----------------
# Keys with room for 200 distinct values are shared (every value written is unique, so every
# set is a change); memory, ncpu, proxy-verbose and on-sleep each have one writer of their own.
writer() {
  local p=$1 key i v
  for i in $(seq 0 9); do
    case $p in
      0|1|2|3) key=hostname; v="h$p-$i" ;;
      4|5|6|7) key=daemon; v="{\"p\":$p,\"i\":$i}" ;;
      8|9|10|11) key=sysctl; v="kernel.p${p}_i$i = 1" ;;
      12|13|14|15) key=insecure-registry; v="r$p-$i.example:5000" ;;
      16) key=memory; v=$((31 + i)) ;;
      17) key=ncpu; v=$((41 + i)) ;;
      18) key=proxy-verbose; if [ $((i % 2)) = 0 ]; then v=true; else v=false; fi ;;
      19) key=on-sleep; if [ $((i % 2)) = 0 ]; then v=freeze; else v=none; fi ;;
    esac
    echo "set $key=$v" >>"$WORK/expected.$p"
    if ! "$PINATA" set "$key" "$v" >>"$WORK/writer.$p.log" 2>&1; then
      echo "writer $p: set $key $v failed" >>"$WORK/failures"
    fi
  done
}
n=$(commits)
pids=()
for p in $(seq 0 19); do writer "$p" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done
check "every one of the 200 concurrent sets succeeded" test ! -e "$WORK/failures"
[ -e "$WORK/failures" ] && head "$WORK/failures"
check "exactly 200 new commits" test "$(commits)" = $((n + 200))
cat "$WORK"/expected.* | sort >"$WORK/expected"
g log --format=%s -200 master | sort >"$WORK/actual"
check "... one per set, none lost or repeated" cmp -s "$WORK/expected" "$WORK/actual"
check "... each with exactly one parent (a straight line)" test "$(g rev-list --min-parents=2 --count master)" = 0
for key in hostname daemon sysctl insecure-registry memory ncpu proxy-verbose on-sleep; do
  case $key in
    hostname) path=$K/etc/hostname ;;
    daemon) path=$K/etc/docker/daemon.json ;;
    sysctl) path=$K/etc/sysctl.conf ;;
    *) path=$K/$key ;;
  esac
  last=$(g log -1 --format=%s master -- "$path")
  check "$key is the value of the last commit that set it ($last)" test "$last" = "set $key=$("$PINATA" get "$key")"
done
check "memory is its writer's last value" test "$("$PINATA" get memory)" = 40
check "ncpu is its writer's last value" test "$("$PINATA" get ncpu)" = 50
check "git fsck is clean after the concurrent writers" g fsck --strict --no-progress --no-dangling

# --- (d) locked and damaged repositories -------------------------------------------------------
h=$(head_id)
touch "$DB/.git/refs/heads/master.lock"
expect_exit 1 "a stale branch lock fails the set" "$PINATA" set memory 7
check "... naming the lock file and what to do" contains "$out" "$DB/.git/refs/heads/master.lock exists.*remove that file"
check "... leaving the lock alone" test -e "$DB/.git/refs/heads/master.lock"
check "... and the branch unchanged" test "$(head_id)" = "$h"
expect_exit 0 "reads still work while it is locked" "$PINATA" get memory
rm "$DB/.git/refs/heads/master.lock"
touch "$DB/.git/index.lock"
expect_exit 1 "a git command holding the index fails the set" "$PINATA" set memory 7
check "... naming index.lock" contains "$out" "$DB/.git/index.lock exists"
rm "$DB/.git/index.lock"
expect_exit 0 "with the locks gone the set goes through" "$PINATA" set memory 7

tree=$(g rev-parse 'master^{tree}')
obj="$DB/.git/objects/${tree:0:2}/${tree:2}"
cp "$obj" "$WORK/tree.saved"
chmod u+w "$obj"
head -c 20 "$WORK/tree.saved" >"$obj"
before=$(snapshot)
expect_exit 1 "a truncated object fails the set" "$PINATA" set memory 8
check "... saying the database is damaged and how to inspect it" contains "$out" "$DB: the configuration database is damaged (object $tree .* is truncated.*git -C $DB fsck"
expect_exit 1 "... and fails reads the same way" "$PINATA" get memory
check "... in one line" test "$(wc -l <<<"$out")" = 1
expect_exit 1 "... and list" "$PINATA" list
check "nothing in the repository was written" test "$(snapshot)" = "$before"
cp "$WORK/tree.saved" "$obj"
expect_exit 0 "with the object restored everything works again" "$PINATA" get memory
check "... with the value from before" test "$out" = 7

cp "$DB/.git/HEAD" "$WORK/HEAD.saved"
echo "garbage" >"$DB/.git/HEAD"
before=$(snapshot)
expect_exit 1 "a garbage HEAD fails the set" "$PINATA" set memory 9
check "... saying so" contains "$out" "damaged (cannot read HEAD"
check "... writing nothing" test "$(snapshot)" = "$before"
cp "$WORK/HEAD.saved" "$DB/.git/HEAD"

mv "$DB" "$DB.moved"
mkdir "$DB"
echo precious >"$DB/notes.txt"
expect_exit 1 "a database directory that is not a git repository is refused" "$PINATA" set memory 9
check "... saying what to do" contains "$out" "is not a git repository.*move it aside"
check "... and its files are untouched" test "$(cat "$DB/notes.txt")" = precious -a ! -e "$DB/.git"
rm -r "$DB"
mv "$DB.moved" "$DB"
check "git fsck is clean at the end" g fsck --strict --no-progress --no-dangling

finish
