#!/usr/bin/env bash
# bench/run.sh — end-to-end performance checks of dnfproxy against nginx.
#
# Everything runs on 127.0.0.1 with free ports, in a temporary directory that
# is removed on exit. nginx serves a directory (the "direct" baseline) and is
# also the proxy's upstream; the proxy is the real binary of ./cmd/dnfproxy.
# Every figure is reported next to the nginx figure measured in the same run,
# and judged by their ratio only: absolute times on a shared machine mean
# little.
#
#   1  cache-hit throughput, one large non-RPM file, warm proxy vs nginx
#   2  requests/s of 64 clients on small RPMs, warm proxy vs nginx
#   3  cold miss of the large file (fresh store each time) vs nginx, with
#      the proxy's peak VmRSS and RssAnon during the fill; in the same rounds
#      the same miss through nginx's own caching proxy (3f, proxy_cache on a
#      key it has not seen) and through a Go relay that stores nothing (3g,
#      the floor of two loopback transfers), and the proxy against nginx's
#      caching proxy (3h); and two floors built for the comparison: a
#      splice(2) relay that stores nothing (3i, the least any relay does) and
#      a splice(2)-into-a-spool, sendfile(2)-out relay (3j, the least anything
#      does to keep the bytes on disk while it sends them: no verification, no
#      store), with the proxy against the latter (3k); then the same miss on
#      one running proxy, a file name it has not seen each round (3l)
#   4  `dnf makecache` through a warm proxy vs nginx (the testdata repo, and
#      a synthetic repo of BENCH_SYNTH_PKGS packages)
#
# Results: bench/out/results.md and bench/out/results.json (BENCH_OUT to
# change). Knobs (environment): BENCH_BIG_MIB (256), BENCH_REPS (5, rounds
# of rows 1 and 3), BENCH_RPS_ROUNDS (5) of BENCH_RPS_SECONDS (2) per side
# for row 2, BENCH_DNF_RUNS (5),
# BENCH_SYNTH_PKGS (20000; 0 skips the synthetic repo), BENCH_WAN_RATE (nginx
# limit_rate of the WAN-like upstream of row 3d, 200m), BENCH_WAN_REPS (3),
# BENCH_KEEP=1 keeps
# the temporary directory, BENCH_ROWS (1,2,3,3d,4: all) the rows to run, e.g.
# BENCH_ROWS=2,3; BENCH_PPROF=DIR saves a CPU profile of the proxy (and its
# binary) under 64 clients (row 2) and during a cold miss (row 3a) to DIR.
# Rows 2d (proxy vs the Go file server) and 3e (CPU during cold misses) come
# with rows 2 and 3.
#
# Exit status: 0 when the measurements ran, whatever the verdicts (they are
# in the report); 1 when the harness itself failed; with BENCH_STRICT=1 also
# 1 when a target was missed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
ROOT=$(cd "$HERE/.." && pwd)
OUT=${BENCH_OUT:-$HERE/out}
BIG_MIB=${BENCH_BIG_MIB:-256}
REPS=${BENCH_REPS:-5}
WAN_RATE=${BENCH_WAN_RATE:-200m}
WAN_REPS=${BENCH_WAN_REPS:-3}
RPS_SECONDS=${BENCH_RPS_SECONDS:-2}
RPS_ROUNDS=${BENCH_RPS_ROUNDS:-5}
DNF_RUNS=${BENCH_DNF_RUNS:-5}
SYNTH_PKGS=${BENCH_SYNTH_PKGS:-20000}
ROWS_ON=,${BENCH_ROWS:-1,2,3,3d,4},
PPROF=${BENCH_PPROF:-}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in BIG_MIB REPS RPS_SECONDS RPS_ROUNDS DNF_RUNS SYNTH_PKGS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a number, not '${!v}'"
done
((BIG_MIB >= 1 && BIG_MIB <= 4096)) || die "BENCH_BIG_MIB: 1..4096"
((REPS >= 1 && REPS <= 50)) || die "BENCH_REPS: 1..50"
((RPS_SECONDS >= 1 && RPS_SECONDS <= 120)) || die "BENCH_RPS_SECONDS: 1..120"
((RPS_ROUNDS >= 1 && RPS_ROUNDS <= 50)) || die "BENCH_RPS_ROUNDS: 1..50"
((DNF_RUNS >= 1 && DNF_RUNS <= 50)) || die "BENCH_DNF_RUNS: 1..50"
((SYNTH_PKGS <= 200000)) || die "BENCH_SYNTH_PKGS: at most 200000"
[[ $ROWS_ON =~ ^,((1|2|3|3d|4),)+$ ]] || die "BENCH_ROWS: a comma-separated list of 1, 2, 3, 3d, 4"
on() { [[ $ROWS_ON == *,$1,* ]]; } # on ROW: whether the row runs
if [[ -n $PPROF ]]; then
	mkdir -p "$PPROF" && PPROF=$(cd "$PPROF" && pwd) || die "BENCH_PPROF: cannot make $PPROF"
fi

# --- tools -------------------------------------------------------------------

NGINX=$(command -v nginx || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
if [[ -z $NGINX ]]; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing nginx (apt-get)"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null ||
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
		NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	fi
	[[ -x $NGINX ]] || die "nginx is needed (Debian: apt-get install nginx-light)"
fi
command -v go >/dev/null || die "go is needed"
CREATEREPO=$(command -v createrepo_c || true)
DNF=$(command -v dnf || true)
[[ -n $CREATEREPO ]] || log "createrepo_c missing: rows 2 and 4 are skipped"
[[ -n $DNF ]] || log "dnf missing: row 4 is skipped"

# --- temporary directory and cleanup ------------------------------------------

T=$(mktemp -d "${TMPDIR:-/tmp}/dnfproxy-bench.XXXXXX")
chmod 755 "$T" # nginx workers may run as another user
PIDS=()
cleanup() {
	local rc=$?
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		log "kept $T"
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- build ---------------------------------------------------------------------

log "building dnfproxy and the bench tools"
mkdir -p "$T/bin"
(cd "$ROOT" && go build -o "$T/bin/dnfproxy" ./cmd/dnfproxy &&
	go build -o "$T/bin/loadgen" ./bench/loadgen &&
	go build -o "$T/bin/benchutil" ./bench/benchutil &&
	go build -o "$T/bin/genrepo" ./bench/genrepo)
LOADGEN=$T/bin/loadgen
BU=$T/bin/benchutil

mapfile -t P < <("$BU" ports 8)
NGINX_PORT=${P[0]} PROXY_PORT=${P[1]} ADMIN_PORT=${P[2]} GOFS_PORT=${P[3]}
NGINX_CACHE_PORT=${P[4]} RELAY_PORT=${P[5]} SPLICE_PORT=${P[6]} SPOOL_PORT=${P[7]}
DIRECT=http://127.0.0.1:$NGINX_PORT
NGINX_CACHE=http://127.0.0.1:$NGINX_CACHE_PORT
RELAY=http://127.0.0.1:$RELAY_PORT
SPLICE=http://127.0.0.1:$SPLICE_PORT
SPOOLFLOOR=http://127.0.0.1:$SPOOL_PORT
PROXY=http://127.0.0.1:$PROXY_PORT/bench

# --- content -------------------------------------------------------------------

WWW=$T/www
mkdir -p "$WWW/images" "$WWW/repo/Packages"
log "writing a ${BIG_MIB} MiB random file"
head -c "$((BIG_MIB << 20))" /dev/urandom >"$WWW/images/big.img"
BIG_SIZE=$(stat -c %s "$WWW/images/big.img")

HAVE_REPO=0
if [[ -n $CREATEREPO ]]; then
	for f in "$ROOT"/testdata/rpms/dnfpt-*.rpm; do
		[[ $(basename "$f") == dnfpt-big-* ]] && continue
		cp "$f" "$WWW/repo/Packages/"
	done
	"$CREATEREPO" --quiet "$WWW/repo" >/dev/null
	HAVE_REPO=1
fi
HAVE_SYNTH=0
if ((SYNTH_PKGS > 0)); then
	log "writing a synthetic repo of $SYNTH_PKGS packages (metadata only)"
	"$T/bin/genrepo" -n "$SYNTH_PKGS" "$WWW/synth"
	HAVE_SYNTH=1
fi

# --- nginx -------------------------------------------------------------------

nginx_start "$T/nginx" "
	types {
		text/xml xml;
		application/x-rpm rpm;
		application/gzip gz;
	}
	# nginx as a caching proxy of the server below, for row 3's peer
	# baseline: it receives, writes its cache file and sends, as the
	# proxy does (buffers raised from the 4-8 KiB defaults to 1 MiB).
	proxy_cache_path $T/nginx/cache levels=1:2 keys_zone=bench:10m max_size=16g inactive=1h use_temp_path=off;
	server {
		listen 127.0.0.1:$NGINX_CACHE_PORT;
		location / {
			proxy_pass $DIRECT;
			proxy_cache bench;
			proxy_cache_key \$uri\$is_args\$args;
			proxy_cache_valid 200 1h;
			proxy_buffer_size 1m;
			proxy_buffers 8 1m;
			proxy_busy_buffers_size 2m;
		}
	}
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $WWW;
		# A WAN-like upstream for row 3d: the same files at a bounded rate.
		location /wan/ {
			alias $WWW/;
			limit_rate $WAN_RATE;
		}
	}"
"$BU" wait "$DIRECT/" 15 || die "nginx did not start: $(tail -5 "$T/nginx/error.log")"
NGINX_PIDS=$(pgrep -P "$NGINX_PID" | paste -sd, -) # the workers
NGINX_PIDS=${NGINX_PIDS:+$NGINX_PIDS,}$NGINX_PID

# The Go floor: net/http's file server over the same directory (row 2b).
GOFS=http://127.0.0.1:$GOFS_PORT
"$BU" static "127.0.0.1:$GOFS_PORT" "$WWW" &
GOFS_PID=$!
PIDS+=("$GOFS_PID")
"$BU" wait "$GOFS/" 15 || die "the Go file server did not start"

# The Go proxy floor: a relay that stores nothing (row 3g).
"$BU" relay "127.0.0.1:$RELAY_PORT" "$DIRECT" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
"$BU" wait "$RELAY/" 15 || die "the Go relay did not start"

# The floors of any relay and of any proxy that keeps the bytes (rows 3i,
# 3j): splice(2) socket to socket, and splice(2) into a spool file with
# sendfile(2) out of it.
"$BU" splicerelay "127.0.0.1:$SPLICE_PORT" "$DIRECT" &
PIDS+=("$!")
mkdir -p "$T/spoolfloor"
"$BU" spoolrelay "127.0.0.1:$SPOOL_PORT" "$DIRECT" "$T/spoolfloor" &
PIDS+=("$!")
"$BU" wait "$SPLICE/" 15 || die "the splice relay did not start"
"$BU" wait "$SPOOLFLOOR/" 15 || die "the spool floor did not start"

# --- proxy ---------------------------------------------------------------------

PROXY_PID=""
PROXY_RUN=0
start_proxy() { # starts the proxy on a fresh storage dir
	PROXY_RUN=$((PROXY_RUN + 1))
	local dir=$T/proxy/$PROXY_RUN
	mkdir -p "$dir"
	cat >"$dir/config.yaml" <<EOF
listen: "127.0.0.1:$PROXY_PORT"
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
  token: "bench-token"
storage:
  dir: "$dir/data"
  max_size: "20GiB"
repos:
  - name: bench
    url: "$DIRECT/"
    metadata_ttl: "1h"
  - name: wan
    url: "$DIRECT/wan/"
    metadata_ttl: "1h"
EOF
	env -u http_proxy -u HTTP_PROXY -u no_proxy -u NO_PROXY \
		"$T/bin/dnfproxy" serve --config "$dir/config.yaml" 2>>"$T/proxy/log" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	"$BU" wait "http://127.0.0.1:$ADMIN_PORT/healthz" 30 ||
		die "dnfproxy did not start: $(tail -5 "$T/proxy/log")"
	"$BU" wait "http://127.0.0.1:$PROXY_PORT/" 10 || die "dnfproxy client listener did not start"
}
stop_proxy() {
	[[ -n $PROXY_PID ]] || return 0
	kill -TERM "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
	forget_pid "$PROXY_PID"
	PROXY_PID=""
	rm -rf "$T/proxy/$PROXY_RUN/data"
}
committed() { # committed N: waits until the running proxy has committed N fills of repo bench
	local k
	for ((k = 0; k < 600; k++)); do
		[[ $(curl -sf -H "Authorization: Bearer bench-token" "http://127.0.0.1:$ADMIN_PORT/metrics" |
			awk '$1 ~ /^dnfproxy_fill_duration_seconds_count\{repo="bench"\}$/ { print $2 }') == "$1" ]] && return 0
		sleep 0.1
	done
	die "the proxy did not commit fill $1 within 60 s"
}

# --- helpers -------------------------------------------------------------------

mkdir -p "$OUT"
ROWS=$OUT/rows.tsv
: >"$ROWS"
RAW=$OUT/raw.jsonl
: >"$RAW"

lg() { # lg LABEL loadgen-args... → loadgen's JSON on stdout, also kept in raw.jsonl
	local label=$1
	shift
	local out
	if ! out=$("$LOADGEN" "$@"); then
		log "loadgen failed ($label): $out"
		return 1
	fi
	printf '{"label":"%s","result":%s}\n' "$label" "$out" >>"$RAW"
	printf '%s\n' "$out"
}
field() { "$BU" field "$1" <<<"$2"; }
verdict() { # verdict VALUE OP LIMIT → pass|MISS
	awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
		ok = (op == ">=") ? (v >= l) : (op == "<=") ? (v <= l) : (v < l)
		print ok ? "pass" : "MISS" }'
}
row() { # id title unit proxy direct ratio target verdict note
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$ROWS"
	printf '  %-4s %-44s proxy=%-10s direct=%-10s ratio=%-7s %s %s\n' "$1" "$2 ($3)" "$4" "$5" "$6" "$7" "$8" >&2
}
MISSES=0
count_miss() { [[ $1 == pass || $1 == "" ]] || MISSES=$((MISSES + 1)); }

{
	printf '#date\t%s\n' "$(date -u +'%Y-%m-%d %H:%M UTC')"
	printf '#machine\t%s cores, %s, %s MiB RAM, Linux %s\n' "$(nproc)" \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
		"$(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" "$(uname -r)"
	printf '#load average at start\t%s (other work on the machine disturbs every figure; ratios less)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '#commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf '#go\t%s\n' "$(go version | awk '{ print $3 }')"
	printf '#nginx\t%s\n' "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
	[[ -n $DNF ]] && printf '#dnf\t%s\n' "$("$DNF" --version 2>/dev/null | head -1)"
	printf '#settings\tbig file %s MiB, %s rounds (rows 1, 3), %s rounds of %ss per side (row 2), %s dnf rounds, synthetic repo of %s packages\n' \
		"$BIG_MIB" "$REPS" "$RPS_ROUNDS" "$RPS_SECONDS" "$DNF_RUNS" "$SYNTH_PKGS"
	printf '#ratio\tproxy/nginx per round (both measured back to back, in alternating order); a row gives the median of its rounds\n'
	git -C "$ROOT" diff --quiet HEAD -- cmd proxy cache metadata internal 2>/dev/null ||
		printf '#note\tthe work tree had uncommitted changes in the proxy code\n'
} >>"$ROWS"

# --- measurement rounds ---------------------------------------------------------------
#
# A round measures nginx and the proxy back to back, in alternating order, and
# yields one ratio proxy/nginx. A row's ratio is the median of its rounds'
# ratios: drift of a noisy machine hits both sides of a round alike, whereas
# a ratio of two medians would pair measurements taken far apart.

PV=() DV=() RV=() # values of the current row: proxy, direct, ratio per round
round_reset() { PV=() DV=() RV=(); }
round_add() { # round_add PROXY DIRECT
	PV+=("$1") DV+=("$2") RV+=("$(ratio "$1" "$2")")
}
# cpu_ticks JSON: loadgen's cpu_seconds at 10 ms resolution (a reading
# under one tick counts as one tick)
cpu_ticks() {
	awk -v x="$(field cpu_seconds "$1" 2>/dev/null || echo 0)" 'BEGIN { print (x < 0.01) ? 0.01 : x }'
}
# pair_rounds P D: the current row's values from the arrays named P and D
# (one value a round each) and their ratio in each round
pair_rounds() {
	local -n pv=$1 dv=$2
	local i
	PV=("${pv[@]}") DV=("${dv[@]}") RV=()
	for ((i = 0; i < ${#pv[@]}; i++)); do RV+=("$(ratio "${pv[i]}" "${dv[i]}")"); done
}
# row_rounds ID TITLE UNIT OP LIMIT NOTE: the medians and the verdict of the row
row_rounds() {
	local mp md r v="" target="$4 $5"
	mp=$(rnd "$(median "${PV[@]}")") md=$(rnd "$(median "${DV[@]}")")
	r=$(awk -v x="$(median "${RV[@]}")" 'BEGIN { printf "%.3f", x }')
	if [[ $4 == report ]]; then
		target=report
	else
		v=$(verdict "$r" "$4" "$5")
		count_miss "$v"
	fi
	row "$1" "$2" "$3" "$mp" "$md" "$r" "$target" "$v" \
		"$6; ratios per round: $(list "${RV[@]}"); ${PLABEL:-proxy}: $(list "${PV[@]}"); ${DLABEL:-nginx}: $(list "${DV[@]}")"
}

# --- 1: cache-hit throughput ------------------------------------------------------

if on 1; then
	log "1: cache-hit throughput, ${BIG_MIB} MiB file"
	start_proxy
	lg 1-fill -url "$PROXY/images/big.img=$BIG_SIZE" -n 1 >/dev/null
	lg 1-warmup-direct -url "$DIRECT/images/big.img=$BIG_SIZE" -n 1 >/dev/null
	round_reset
	cpuP=() cpuD=()
	hit() { # hit LABEL URL PIDS → loadgen JSON of 2 GETs
		lg "$1" -url "$2=$BIG_SIZE" -n 2 -cpu-pids "$3"
	}
	gib() { # gib JSON → server CPU seconds per GiB served
		awk -v c="$(field cpu_seconds "$1")" -v b="$(field bytes "$1")" 'BEGIN { printf "%.4f", c / (b / 1073741824) }'
	}
	for ((i = 0; i < REPS; i++)); do
		if ((i % 2 == 0)); then
			jd=$(hit 1-direct "$DIRECT/images/big.img" "$NGINX_PIDS")
			jp=$(hit 1-proxy "$PROXY/images/big.img" "$PROXY_PID")
		else
			jp=$(hit 1-proxy "$PROXY/images/big.img" "$PROXY_PID")
			jd=$(hit 1-direct "$DIRECT/images/big.img" "$NGINX_PIDS")
		fi
		round_add "$(field mib_per_sec "$jp")" "$(field mib_per_sec "$jd")"
		cpuP+=("$(gib "$jp")") cpuD+=("$(gib "$jd")")
	done
	row_rounds 1 "cache hit, ${BIG_MIB} MiB file, 1 client" "MiB/s" ">=" 0.9 \
		"$REPS rounds of 2 GETs per side"
	pair_rounds cpuP cpuD
	row_rounds 1b "server CPU time per GiB served, same rounds" "s/GiB" report "" \
		"user+system time of the server processes over the round / bytes served (at 10 ms resolution)"
fi

# --- 2: small RPMs, 64 clients ------------------------------------------------------

if on 2 && ((HAVE_REPO)); then
	log "2: 64 clients on small RPMs"
	[[ -n $PROXY_PID ]] || start_proxy
	: >"$T/urls-proxy"
	: >"$T/urls-direct"
	for f in "$WWW"/repo/Packages/*.rpm; do
		b=$(basename "$f") s=$(stat -c %s "$f")
		echo "$PROXY/repo/Packages/$b $s" >>"$T/urls-proxy"
		echo "$DIRECT/repo/Packages/$b $s" >>"$T/urls-direct"
	done
	NRPM=$(wc -l <"$T/urls-proxy")
	# Warm: repomd.xml teaches the proxy the package index; each RPM once.
	lg 2-warm-repomd -url "$PROXY/repo/repodata/repomd.xml" -n 1 >/dev/null
	lg 2-warm -urls "$T/urls-proxy" -n "$NRPM" >/dev/null
	lg 2-warm-direct -urls "$T/urls-direct" -n "$NRPM" >/dev/null
	: >"$T/urls-gofs"
	sed "s#^$DIRECT/#$GOFS/#" "$T/urls-direct" >"$T/urls-gofs"
	lg 2-warm-gofs -urls "$T/urls-gofs" -n "$NRPM" >/dev/null
	round_reset
	p99p=() p99d=() gv=() gr=() cp=() cd=() cg=() PV2=()
	rps() { # rps LABEL URLFILE PIDS → loadgen JSON
		lg "$1" -mode rps -c 64 -d "${RPS_SECONDS}s" -urls "$2" -cpu-pids "$3"
	}
	for ((i = 0; i < RPS_ROUNDS; i++)); do
		if ((i % 2 == 0)); then
			jd=$(rps 2-direct "$T/urls-direct" "$NGINX_PIDS")
			jp=$(rps 2-proxy "$T/urls-proxy" "$PROXY_PID")
			jg=$(rps 2-gofs "$T/urls-gofs" "$GOFS_PID")
		else
			jg=$(rps 2-gofs "$T/urls-gofs" "$GOFS_PID")
			jp=$(rps 2-proxy "$T/urls-proxy" "$PROXY_PID")
			jd=$(rps 2-direct "$T/urls-direct" "$NGINX_PIDS")
		fi
		d=$(field requests_per_sec "$jd") g=$(field requests_per_sec "$jg")
		round_add "$(field requests_per_sec "$jp")" "$d"
		PV2+=("$(field requests_per_sec "$jp")")
		gv+=("$g") gr+=("$(ratio "$g" "$d")")
		p99p+=("$(field p99_ms "$jp")") p99d+=("$(field p99_ms "$jd")")
		cp+=("$(field cpu_us_per_request "$jp")") cd+=("$(field cpu_us_per_request "$jd")")
		cg+=("$(field cpu_us_per_request "$jg")")
	done
	row_rounds 2 "64 clients, $NRPM RPMs of ~6 KiB, cache hits" "req/s" ">=" 0.8 \
		"$RPS_ROUNDS rounds of ${RPS_SECONDS}s per side; p99 latency ms per round: proxy $(list "${p99p[@]}"), nginx $(list "${p99d[@]}")"
	PV=("${gv[@]}") RV=("${gr[@]}")
	PLABEL="Go file server"
	row_rounds 2b "same load on Go's net/http file server (reference)" "req/s" report "" \
		"the Go HTTP floor: what a Go server that does nothing but serve files gets, same rounds"
	PLABEL=""
	pair_rounds cp cd
	row_rounds 2c "server CPU time per request, same rounds" "µs" report "" \
		"user+system time of the server processes (nginx: master and workers) over the round / requests; Go file server: $(list "${cg[@]}")"
	pair_rounds PV2 gv
	DLABEL="Go file server"
	row_rounds 2d "proxy against the Go file server, same rounds" "req/s" ">=" 1.0 \
		"the proxy's requests/s over the Go file server's in each round (both columns are req/s; direct = Go file server)"
	DLABEL=""
	if [[ -n $PPROF ]]; then
		log "2: CPU profile of the proxy under 64 clients (unmeasured) → $PPROF/row2.cpu"
		cp "$T/bin/dnfproxy" "$PPROF/dnfproxy"
		curl -sf -H "Authorization: Bearer bench-token" -o "$PPROF/row2.cpu" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$RPS_SECONDS" &
		prof=$!
		lg 2-pprof -mode rps -c 64 -d "$((RPS_SECONDS + 1))s" -urls "$T/urls-proxy" >/dev/null
		wait "$prof" || log "the profile request failed"
	fi
fi
stop_proxy

# --- 3: cold miss --------------------------------------------------------------------

if on 3; then
	log "3: cold miss, ${BIG_MIB} MiB file, fresh store each time"
	round_reset
	rss=() anon=() cpu3p=() cpu3d=() t3c=() t3r=() t3d=() t3p=() t3z=() t3s=()
	for ((i = 0; i < REPS; i++)); do
		start_proxy
		j=$(lg 3-proxy -url "$PROXY/images/big.img=$BIG_SIZE" -n 1 -sample-pid "$PROXY_PID" -sample-every 50ms -cpu-pids "$PROXY_PID")
		stop_proxy
		rss+=("$(field peak_vmrss_kib "$j")") anon+=("$(field peak_rssanon_kib "$j")")
		jd=$(lg 3-direct -url "$DIRECT/images/big.img=$BIG_SIZE" -n 1 -cpu-pids "$NGINX_PIDS")
		round_add "$(field seconds "$j")" "$(field seconds "$jd")"
		# Peers on the same file: nginx's caching proxy on a key it has not
		# seen (a fresh query string each round) and the storeless Go relay.
		jc=$(lg 3-nginx-cache -url "$NGINX_CACHE/images/big.img?cold=$PROXY_RUN=$BIG_SIZE" -n 1)
		jr=$(lg 3-relay -url "$RELAY/images/big.img=$BIG_SIZE" -n 1)
		jz=$(lg 3-splice -url "$SPLICE/images/big.img=$BIG_SIZE" -n 1)
		js=$(lg 3-spool -url "$SPOOLFLOOR/images/big.img=$BIG_SIZE" -n 1)
		t3z+=("$(field seconds "$jz")") t3s+=("$(field seconds "$js")")
		t3c+=("$(field seconds "$jc")") t3r+=("$(field seconds "$jr")") t3d+=("$(field seconds "$jd")")
		t3p+=("$(field seconds "$j")")
		if ((i == 0)); then
			cached=$(du -sk "$T/nginx/cache" | cut -f1)
			((cached >= BIG_MIB * 1024)) ||
				die "nginx's caching proxy stored ${cached} KiB of the ${BIG_MIB} MiB miss: the peer row would measure a relay"
		fi
		cpu3p+=("$(cpu_ticks "$j")") cpu3d+=("$(cpu_ticks "$jd")")
	done
	if [[ -n $PPROF ]]; then
		log "3: CPU profile of the proxy during a cold miss (unmeasured) → $PPROF/row3.cpu"
		cp "$T/bin/dnfproxy" "$PPROF/dnfproxy"
		start_proxy
		curl -sf -H "Authorization: Bearer bench-token" -o "$PPROF/row3.cpu" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=2" &
		prof=$!
		sleep 0.3
		lg 3-pprof -url "$PROXY/images/big.img=$BIG_SIZE" -n 1 >/dev/null
		wait "$prof" || log "the profile request failed"
		stop_proxy
	fi
	row_rounds 3a "cold miss, ${BIG_MIB} MiB file, 1 client" "s" "<=" 1.3 \
		"$REPS rounds, a fresh proxy store each"
	pair_rounds t3c t3d
	PLABEL="nginx proxy_cache"
	row_rounds 3f "same cold miss through nginx's own caching proxy (peer)" "s" report "" \
		"nginx proxy_cache in front of the same nginx, a key it has not seen each round, 1 MiB proxy buffers; same rounds"
	pair_rounds t3r t3d
	PLABEL="Go relay"
	row_rounds 3g "same file through a Go relay that stores nothing (floor)" "s" report "" \
		"httputil.ReverseProxy with 1 MiB buffers: two loopback transfers and nothing else; same rounds"
	pair_rounds t3p t3c
	PLABEL="" DLABEL="nginx proxy_cache"
	row_rounds 3h "proxy against nginx's caching proxy, same rounds" "s" "<=" 1.0 \
		"the cold miss of row 3a over nginx proxy_cache's in each round (direct = nginx proxy_cache)"
	pair_rounds t3z t3d
	PLABEL="splice relay" DLABEL=""
	row_rounds 3i "same file through a splice(2) relay that stores nothing (floor of any relay)" "s" report "" \
		"benchutil splicerelay: upstream socket to client socket through a pipe, no byte in user space; same rounds"
	pair_rounds t3s t3d
	PLABEL="spool floor"
	row_rounds 3j "same file spliced into a spool file and sent from it (floor of keeping the bytes on disk while sending them)" "s" report "" \
		"benchutil spoolrelay: splice(2) into an unlinked, preallocated spool, sendfile(2) out as it grows; no verification, no store, so below what a caching proxy must do; same rounds"
	pair_rounds t3p t3s
	PLABEL="" DLABEL="spool floor"
	row_rounds 3k "proxy against the spool floor, same rounds" "s" report "" \
		"the cold miss of row 3a over row 3j's in each round (direct = the spool floor)"
	PLABEL="" DLABEL=""
	peak_rss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
	peak_anon=$(printf '%s\n' "${anon[@]}" | sort -n | tail -1)
	rss_mib=$(awk -v k="$peak_rss" 'BEGIN { printf "%.1f", k / 1024 }')
	anon_mib=$(awk -v k="$peak_anon" 'BEGIN { printf "%.1f", k / 1024 }')
	v=$(verdict "$rss_mib" "<" 100)
	count_miss "$v"
	row 3b "peak VmRSS of the proxy during the cold fills" "MiB" "$rss_mib" "" "" "< 100" "$v" \
		"max over $REPS fills, sampled every 50 ms; per fill (KiB): ${rss[*]}"
	v=$(verdict "$anon_mib" "<" 100)
	count_miss "$v"
	row 3c "peak RssAnon of the proxy during the cold fills" "MiB" "$anon_mib" "" "" "< 100" "$v" \
		"per fill (KiB): ${anon[*]}"
	pair_rounds cpu3p cpu3d
	row_rounds 3e "server CPU time during the cold misses of row 3a" "s" report "" \
		"user+system time of the proxy (nginx: master and workers) while its client received the file, at 10 ms resolution; the proxy's includes what it took from nginx as upstream"

	# 3l: the same cold miss on a proxy that has been running, as a daemon
	# is: one proxy for all rounds, a file name it has not seen each round
	# (hard links, so nginx serves the same cached inode), and nothing
	# measured until the previous round's object is committed. Row 3a
	# starts a fresh process each round, so its window also holds the
	# process's own start (the executable's first page faults, the
	# runtime's and the store's warm-up); nginx has none of that.
	log "3l: cold miss on a running proxy, a new file name each round"
	for ((i = 0; i < REPS; i++)); do ln -f "$WWW/images/big.img" "$WWW/images/big-r$i.img"; done
	start_proxy
	sleep 2
	round_reset
	for ((i = 0; i < REPS; i++)); do
		if ((i % 2 == 0)); then
			jd=$(lg 3l-direct -url "$DIRECT/images/big.img=$BIG_SIZE" -n 1)
			j=$(lg 3l-proxy -url "$PROXY/images/big-r$i.img=$BIG_SIZE" -n 1)
		else
			j=$(lg 3l-proxy -url "$PROXY/images/big-r$i.img=$BIG_SIZE" -n 1)
			committed "$((i + 1))"
			jd=$(lg 3l-direct -url "$DIRECT/images/big.img=$BIG_SIZE" -n 1)
		fi
		committed "$((i + 1))"
		round_add "$(field seconds "$j")" "$(field seconds "$jd")"
	done
	stop_proxy
	row_rounds 3l "cold miss, ${BIG_MIB} MiB file, on a running proxy" "s" report "" \
		"$REPS rounds on one proxy started 2 s before, a file name it has not seen each round, the previous object committed before each measurement, order alternating"
fi

# --- 3d: cold miss from a WAN-like upstream ----------------------------------------------

if on 3d; then
	log "3d: cold miss, ${BIG_MIB} MiB file, upstream limited to $WAN_RATE B/s"
	round_reset
	for ((i = 0; i < WAN_REPS; i++)); do
		start_proxy
		j=$(lg 3d-proxy -url "${PROXY%/bench}/wan/images/big.img=$BIG_SIZE" -n 1)
		stop_proxy
		round_add "$(field seconds "$j")" "$(field seconds "$(lg 3d-direct -url "$DIRECT/wan/images/big.img=$BIG_SIZE" -n 1)")"
	done
	row_rounds 3d "cold miss, ${BIG_MIB} MiB file, upstream at $WAN_RATE B/s" "s" "<=" 1.15 \
		"$WAN_REPS rounds, a fresh proxy store each; nginx limit_rate models a fast WAN mirror"
fi

# --- 4: dnf makecache ------------------------------------------------------------------

dnf_row() { # dnf_row ID TITLE SUBPATH
	local id=$1 title=$2 sub=$3 i p d
	dnf_conf "$T/dnf/$id-proxy" "$PROXY/$sub/"
	dnf_conf "$T/dnf/$id-direct" "$DIRECT/$sub/"
	dnf_time "$T/dnf/$id-proxy" >/dev/null # warms the proxy (unmeasured)
	dnf_time "$T/dnf/$id-direct" >/dev/null
	round_reset
	for ((i = 0; i < DNF_RUNS; i++)); do
		if ((i % 2 == 0)); then
			d=$(dnf_time "$T/dnf/$id-direct")
			p=$(dnf_time "$T/dnf/$id-proxy")
		else
			p=$(dnf_time "$T/dnf/$id-proxy")
			d=$(dnf_time "$T/dnf/$id-direct")
		fi
		round_add "$p" "$d"
	done
	row_rounds "$id" "$title" "s" report "" "$DNF_RUNS rounds, a fresh dnf cache and installroot each run"
}
if on 4 && [[ -n $DNF ]] && ((HAVE_REPO || HAVE_SYNTH)); then
	log "4: dnf makecache, warm proxy vs nginx"
	start_proxy
	if ((HAVE_REPO)); then
		dnf_row 4a "dnf makecache, testdata repo ($(ls "$WWW/repo/Packages" | wc -l) packages)" repo
	fi
	if ((HAVE_SYNTH)); then
		dnf_row 4b "dnf makecache, synthetic repo ($SYNTH_PKGS packages, metadata only)" synth
	fi
	stop_proxy
fi

# --- report ------------------------------------------------------------------------------

printf '#load average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$ROWS"
"$BU" report "$ROWS" "$OUT/results.md" "$OUT/results.json"
log "results: $OUT/results.md, $OUT/results.json (raw loadgen output: $RAW)"
cat "$OUT/results.md"
if ((MISSES > 0)); then
	log "$MISSES target(s) missed"
	[[ ${BENCH_STRICT:-0} == 1 ]] && exit 1
fi
exit 0
