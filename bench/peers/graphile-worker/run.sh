#!/usr/bin/env bash
# graphile-worker 0.17.3 peer benchmark for `ospdeck bench queue`; see README.md.
#
#   run.sh --db postgres://USER@HOST:PORT/DB --jobs N --latency-samples N --backlog N [--batch N]
#
# One JSON object on stdout; progress on stderr only when stderr is a terminal;
# on failure exit non-zero with one line on stderr. --db is only used to create
# and drop a database of this run's own (ospdeck_peer_gw_<pid>_<hex>); the
# benchmark runs there, and that database is dropped at exit, error or signal.
set -euo pipefail

VERSION=0.17.3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "graphile-worker peer: $*" >&2
  exit 1
}
say() {
  if [ -t 2 ]; then echo "graphile-worker peer: $*" >&2; fi
}

db="" jobs="" samples="" backlog="" batch=""
while [ $# -gt 0 ]; do
  case "$1" in
    --db | --jobs | --latency-samples | --backlog | --batch)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --db) db=$2 ;;
        --jobs) jobs=$2 ;;
        --latency-samples) samples=$2 ;;
        --backlog) backlog=$2 ;;
        --batch) batch=$2 ;;
      esac
      shift 2
      ;;
    *) die "unknown argument: $1 (usage: run.sh --db URL --jobs N --latency-samples N --backlog N [--batch N])" ;;
  esac
done
[ -n "$db" ] || die "--db is required"
[[ $db =~ ^postgres(ql)?:// ]] || die "--db must be a postgres:// URL"
for pair in "jobs:$jobs" "latency-samples:$samples" "backlog:$backlog"; do
  [[ ${pair#*:} =~ ^[0-9]+$ ]] || die "--${pair%%:*} needs a whole number"
done
[ -z "$batch" ] || [[ $batch =~ ^[0-9]+$ ]] || die "--batch needs a whole number"
if [ "$jobs" -lt 1 ] || [ "$samples" -lt 1 ] || [ "${batch:-1}" -lt 1 ]; then
  die "--jobs, --latency-samples and --batch must be at least 1"
fi

command -v node >/dev/null 2>&1 || die "node is not on PATH (Node.js 18 or newer is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not on PATH (it installs graphile-worker@$VERSION)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || die "node does not run"
[ "$node_major" -ge 18 ] 2>/dev/null || die "node $(node --version) is too old (18 or newer is needed)"

db_name="ospdeck_peer_gw_$$_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
tmp=""          # install staging dir, removed at exit
node_modules="" # where graphile-worker is installed
child=""        # the foreground job, so a signal to this script reaches it
created=0

# shellcheck disable=SC2317 # only reached through the traps below
cleanup() {
  # A second Ctrl-C must not cut the drop short and leave the database behind.
  trap - EXIT
  trap '' INT TERM HUP
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [ "$created" = 1 ]; then
    PEER_DB_URL=$db NODE_PATH=$node_modules node "$here/db.js" drop "$db_name" ||
      echo "graphile-worker peer: database $db_name was left behind; drop it by hand" >&2
  fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'cleanup; echo "graphile-worker peer: interrupted (SIGINT)" >&2; exit 130' INT
trap 'cleanup; echo "graphile-worker peer: terminated (SIGTERM)" >&2; exit 143' TERM
trap 'cleanup; echo "graphile-worker peer: hung up (SIGHUP)" >&2; exit 129' HUP

# Runs a command in the background and waits for it, so a trapped signal is
# handled at once instead of after the command ends (bash defers traps while a
# foreground command runs).
run_child() {
  "$@" &
  child=$!
  local status=0
  wait "$child" || status=$?
  child=""
  return "$status"
}

# The install is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/ospdeck/peers/
# graphile-worker-0.17.3 so that only the first run pays for `npm ci`; it is
# reused only while its package-lock.json matches this folder's. Delete that
# directory to force a fresh install.
cache_root="${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/ospdeck/peers"
cache="$cache_root/graphile-worker-$VERSION"
installed() {
  [ -f "$1/.installed" ] && cmp -s "$1/package-lock.json" "$here/package-lock.json" &&
    [ -f "$1/node_modules/graphile-worker/package.json" ]
}
if installed "$cache"; then
  node_modules="$cache/node_modules"
else
  can_cache=0
  if mkdir -p "$cache_root" 2>/dev/null && tmp=$(mktemp -d "$cache_root/.install.XXXXXX" 2>/dev/null); then
    can_cache=1
  else
    tmp=$(mktemp -d) || die "cannot make a temporary directory"
  fi
  cp "$here/package.json" "$here/package-lock.json" "$tmp/"
  say "installing graphile-worker@$VERSION (npm ci; once, then cached in $cache)"
  if ! run_child npm ci --prefix "$tmp" --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1; then
    # npm prints "code X", a few key/value lines, then the message; its log path is noise.
    errs=$(grep -iE '^npm (err|error)' "$tmp/npm.log" | sed -E 's/^npm (ERR!|error) ?//' || true)
    code=$(printf '%s\n' "$errs" | sed -n -E 's/^code (.*)/\1/p' | head -n 1)
    line=$(printf '%s\n' "$errs" | grep -vE '^(code|syscall|errno|path|dest|signal|command|cwd) |^[[:space:]]|^$|complete log' |
      head -n 1 | cut -c1-240 || true)
    if [ -n "$code" ]; then line="${line:+$line }($code)"; fi
    [ -n "$line" ] || line=$(grep -m1 -v '^\s*$' "$tmp/npm.log" || true)
    die "npm install of graphile-worker@$VERSION failed: ${line:-no output}"
  fi
  got=$(node -p 'require(process.argv[1]).version' "$tmp/node_modules/graphile-worker/package.json" 2>/dev/null || true)
  [ "$got" = "$VERSION" ] || die "npm installed graphile-worker ${got:-nothing}, not $VERSION"
  rm -f "$tmp/npm.log"
  touch "$tmp/.installed"
  node_modules="$tmp/node_modules"
  if [ "$can_cache" = 1 ]; then
    # Moved aside rather than deleted in place so another run never sees half
    # a tree; a run that loses the race keeps using its own copy until exit.
    old="$cache.old.$$"
    if { [ ! -e "$cache" ] || mv "$cache" "$old" 2>/dev/null; } && mv "$tmp" "$cache" 2>/dev/null; then
      tmp=""
      node_modules="$cache/node_modules"
    fi
    rm -rf "$old"
  fi
fi

say "creating database $db_name"
created=1 # set first: a signal during the create still drops it (drop is "if exists")
if ! run_child env PEER_DB_URL="$db" NODE_PATH="$node_modules" node "$here/db.js" create "$db_name"; then
  created=0 # db.js said why; nothing was created, so nothing to drop
  exit 1
fi

# The worker gets a URL naming the new database; the rest of --db (user,
# host, port, options) is kept.
bench_url=$(PEER_DB_URL=$db node -e '
  const u = new URL(process.env.PEER_DB_URL);
  u.pathname = "/" + process.argv[1];
  process.stdout.write(u.toString());
' "$db_name") || die "cannot build a URL for $db_name from --db"

# Run from the install, with graphile-worker's own environment knobs unset:
# its cosmiconfig search starts in the working directory and DATABASE_URL /
# GRAPHILE_WORKER_SCHEMA would otherwise leak into the perf configuration.
args=(--jobs "$jobs" --latency-samples "$samples" --backlog "$backlog")
if [ -n "$batch" ]; then args+=(--batch "$batch"); fi
cd "$(dirname "$node_modules")"
status=0
run_child env -u DATABASE_URL -u GRAPHILE_WORKER_SCHEMA PEER_DB_URL="$bench_url" NODE_PATH="$node_modules" \
  node "$here/bench.js" "${args[@]}" || status=$?
# bench.js prints its own line when it fails; killed by a signal it cannot.
if [ "$status" -gt 128 ]; then die "bench.js was killed by signal $((status - 128))"; fi
exit "$status"
