#!/usr/bin/env bash
# bench/appstream.sh — `dnf makecache` of AppStream-sized repos through
# dnfproxy, cold and warm, against the same dnf talking to nginx directly.
#
# Two repos, each with a reference repo for the annotate view:
#   cs9  the real CentOS Stream 9 AppStream of the corpus (17,649 packages,
#        modules.yaml.xz, comps, stub filelists), copied and with the records
#        whose files the snapshot lacks dropped by `modifyrepo_c --remove`
#   gen  bench/genrepo -n BENCH_GEN_PKGS (30000) with module streams and comps
#        added by modifyrepo_c (--mdtype=modules, group, group_xz)
# The reference of each (cs9-ref, gen-ref) is the same repo with 32 packages
# altered by bench/appstream-ref.py (a soname provide dropped or renamed, a
# release changed, a package removed).
#
# Per repo, a round runs three `dnf makecache` in rotating order, each with a
# fresh dnf cache and installroot:
#   direct          against nginx
#   cold annotate   through a proxy started on an empty store, repo in
#                   compat.mode annotate with compat.reference REPO-ref
#   cold raw        through a proxy started on an empty store, compat.mode off
# then, on one proxy warmed by an unmeasured makecache through each view,
# rounds of direct / warm annotate / warm raw (`@raw` of the same repo).
# Ratios are per round (proxy/direct), rows give their median. The proxy's
# peak RSS is VmHWM of /proc/PID/status just before each proxy stops. A run
# whose dnf did not get the annotate view (raw fallback) stops the bench.
# The proxy has signing.key_file set (BENCH_KEY, the tests' key), so a cold
# start measures metadata work, not a first-ever key generation.
#
# Results: bench/out/appstream.md, bench/out/appstream.json (BENCH_OUT).
# Knobs: BENCH_ROUNDS (5), BENCH_REPOS ("cs9 gen"), BENCH_GEN_PKGS (30000),
# BENCH_PROFILE=1 (one more cold annotate and cold raw run per repo with a
# CPU profile of the proxy from its admin /debug/pprof/profile, written to
# BENCH_OUT/cpu-REPO-VIEW.pprof with a `go tool pprof -top` summary),
# BENCH_PROFILE_SECONDS (15), BENCH_LOG_LEVEL (warn; info logs the proxy's
# switches, view builds and requests with durations to TMP/proxy/log),
# BENCH_CORPUS (../shared/corpora of the repo), BENCH_KEEP=1 keeps the
# temporary directory. BENCH_STRICT=1 exits 1 when a target is missed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
ROOT=$(cd "$HERE/.." && pwd)
OUT=${BENCH_OUT:-$HERE/out}
ROUNDS=${BENCH_ROUNDS:-5}
REPOS=${BENCH_REPOS:-cs9 gen}
GEN_PKGS=${BENCH_GEN_PKGS:-30000}
PROFILE=${BENCH_PROFILE:-0}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
# The signing key is configured, as a deployment keeps it across store
# wipes: "cold" is about metadata, not a first-ever key generation.
KEY=${BENCH_KEY:-$ROOT/proxy/testdata/signing-key.asc}
CORPUS=${BENCH_CORPUS:-$ROOT/../shared/corpora}
APPSTREAM=$CORPUS/osbuild/test/data/testrepos/appstream

log() { printf '[appstream %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 50)) || die "BENCH_ROUNDS: 1..50, not '$ROUNDS'"
[[ $GEN_PKGS =~ ^[0-9]+$ ]] && ((GEN_PKGS >= 100 && GEN_PKGS <= 200000)) || die "BENCH_GEN_PKGS: 100..200000, not '$GEN_PKGS'"
for r in $REPOS; do [[ $r == cs9 || $r == gen ]] || die "BENCH_REPOS: cs9 and/or gen, not '$r'"; done

NGINX=$(command -v nginx || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
[[ -n $NGINX ]] || die "nginx is needed (Debian: apt-get install nginx-light)"
[[ -f $KEY ]] || die "signing key $KEY is missing (BENCH_KEY)"
for t in go dnf modifyrepo_c python3 curl; do
	command -v "$t" >/dev/null || die "$t is needed"
done
if [[ " $REPOS " == *" cs9 "* && ! -f $APPSTREAM/repodata/repomd.xml ]]; then
	die "the CS9 AppStream corpus is missing ($APPSTREAM); BENCH_REPOS=gen runs the generated repo alone"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/dnfproxy-appstream.XXXXXX")
chmod 755 "$T"
PIDS=()
cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $T"; else rm -rf "$T"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building dnfproxy and the bench tools"
mkdir -p "$T/bin"
(cd "$ROOT" && go build -o "$T/bin/dnfproxy" ./cmd/dnfproxy &&
	go build -o "$T/bin/benchutil" ./bench/benchutil &&
	go build -o "$T/bin/genrepo" ./bench/genrepo)
BU=$T/bin/benchutil

# --- content -------------------------------------------------------------------

WWW=$T/www
mkdir -p "$WWW"
for r in $REPOS; do
	case $r in
	cs9)
		log "cs9: copying the CS9 AppStream and dropping the records of absent files"
		cp -r "$APPSTREAM" "$WWW/cs9"
		chmod -R u+w "$WWW/cs9"
		# Every record whose file the snapshot lacks goes, the modifyrepo_c way.
		mapfile -t absent < <(python3 - "$WWW/cs9" <<'EOF'
import os, re, sys
root = sys.argv[1]
md = open(os.path.join(root, "repodata/repomd.xml")).read()
for typ, href in re.findall(r'<data type="([^"]+)">.*?<location href="([^"]+)"', md, re.S):
    if not os.path.exists(os.path.join(root, href)):
        print(typ)
EOF
		)
		for typ in "${absent[@]}"; do
			modifyrepo_c --remove "$typ" "$WWW/cs9/repodata" 2>/dev/null
		done
		log "cs9: dropped ${absent[*]:-nothing}"
		;;
	gen)
		log "gen: genrepo -n $GEN_PKGS with 60 module streams and 80 comps groups"
		"$T/bin/genrepo" -n "$GEN_PKGS" -modules $((GEN_PKGS / 10 < 60 ? GEN_PKGS / 10 : 60)) -groups 80 "$T/gen-src"
		modifyrepo_c --mdtype=modules --compress-type=xz "$T/gen-src/modules.yaml" "$T/gen-src/repodata" >/dev/null
		modifyrepo_c --mdtype=group --no-compress "$T/gen-src/comps.xml" "$T/gen-src/repodata" >/dev/null
		modifyrepo_c --mdtype=group_xz --compress-type=xz "$T/gen-src/comps.xml" "$T/gen-src/repodata" >/dev/null
		mkdir -p "$WWW/gen"
		mv "$T/gen-src/repodata" "$WWW/gen/"
		;;
	esac
	log "$r: reference repo $r-ref: $(python3 "$HERE/appstream-ref.py" "$WWW/$r" "$WWW/$r-ref")"
done

# Known-divergence rules, as an annotate user keeps them: two families.
cat >"$T/rules.yaml" <<'EOF'
rules:
  - name: bench-nodejs
    match: {name: "nodejs*"}
    class: abi-changed
    reason: "bench: a known divergence of the nodejs family"
  - name: bench-ruby
    match: {name: "ruby*"}
    class: patched
    reason: "bench: a vendor-patched ruby"
EOF

# --- nginx -----------------------------------------------------------------------

mapfile -t P < <("$BU" ports 3)
NGINX_PORT=${P[0]} PROXY_PORT=${P[1]} ADMIN_PORT=${P[2]}
DIRECT=http://127.0.0.1:$NGINX_PORT
PROXY=http://127.0.0.1:$PROXY_PORT
ADMIN=http://127.0.0.1:$ADMIN_PORT
TOKEN=bench-$RANDOM$RANDOM
nginx_start "$T/nginx" "
	types { text/xml xml; application/gzip gz; application/x-xz xz; }
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $WWW;
	}"
"$BU" wait "$DIRECT/" 15 || die "nginx did not start: $(tail -5 "$T/nginx/error.log")"

# --- proxy -----------------------------------------------------------------------

PROXY_PID="" PROXY_RUN=0
start_proxy() { # start_proxy annotate|off: a proxy on a fresh store
	PROXY_RUN=$((PROXY_RUN + 1))
	local dir=$T/proxy/$PROXY_RUN r
	mkdir -p "$dir"
	{
		cat <<EOF
listen: "127.0.0.1:$PROXY_PORT"
admin:
  listen: "127.0.0.1:$ADMIN_PORT"
  token: "$TOKEN"
storage:
  dir: "$dir/data"
  max_size: "20GiB"
rule_files: ["$T/rules.yaml"]
signing:
  key_file: "$KEY"
log:
  level: "$LOG_LEVEL"
repos:
EOF
		for r in $REPOS; do
			cat <<EOF
  - name: $r
    url: "$DIRECT/$r/"
    metadata_ttl: "1h"
    compat:
      mode: "$1"
EOF
			if [[ $1 == annotate ]]; then
				cat <<EOF
      reference: "$r-ref"
      elf: {enabled: false}
  - name: $r-ref
    url: "$DIRECT/$r-ref/"
    metadata_ttl: "1h"
EOF
			fi
		done
	} >"$dir/config.yaml"
	env -u http_proxy -u HTTP_PROXY -u no_proxy -u NO_PROXY \
		"$T/bin/dnfproxy" serve --config "$dir/config.yaml" 2>>"$T/proxy/log" >/dev/null &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	"$BU" wait "$ADMIN/healthz" 30 || die "dnfproxy did not start: $(tail -5 "$T/proxy/log")"
	"$BU" wait "$PROXY/" 10 || die "dnfproxy's client listener did not start"
}
HWM=() # VmHWM (KiB) of every proxy run of the current repo
stop_proxy() { # stops the proxy (waiting for it), its VmHWM appended to HWM
	[[ -n $PROXY_PID ]] || return 0
	HWM+=("$(awk '/^VmHWM:/ { print $2 }' "/proc/$PROXY_PID/status")")
	kill -TERM "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
	forget_pid "$PROXY_PID"
	PROXY_PID=""
	rm -rf "$T/proxy/$PROXY_RUN/data"
}

# --- dnf -------------------------------------------------------------------------


# annotated DIR: dies unless dnf's last makecache in DIR got the annotate
# view (its repomd.xml has the abi-divergence record), not a raw fallback.
annotated() {
	local md
	md=$(find "$1/root" -path '*/repodata/repomd.xml' | head -1)
	[[ -n $md ]] && grep -q 'type="abi-divergence"' "$md" ||
		die "dnf did not get the annotate view ($1; proxy log: $(tail -3 "$T/proxy/log"))"
}

# --- rows --------------------------------------------------------------------------

mkdir -p "$OUT"
ROWS=$OUT/appstream-rows.tsv
: >"$ROWS"
{
	printf '#date\t%s\n' "$(date -u +'%Y-%m-%d %H:%M UTC')"
	printf '#machine\t%s cores, %s, %s MiB RAM, Linux %s\n' "$(nproc)" \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
		"$(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" "$(uname -r)"
	printf '#load average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '#commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf '#go\t%s\n' "$(go version | awk '{ print $3 }')"
	printf '#nginx\t%s\n' "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
	printf '#dnf\t%s\n' "$(dnf --version 2>/dev/null | head -1)"
	printf '#settings\t%s rounds per row; repos: %s; generated repo of %s packages\n' "$ROUNDS" "$REPOS" "$GEN_PKGS"
	printf '#ratio\tproxy/direct per round (direct = the same dnf makecache against nginx in the same round); a row gives the median of its rounds\n'
	git -C "$ROOT" diff --quiet HEAD -- cmd proxy cache metadata internal 2>/dev/null ||
		printf '#note\tthe work tree had uncommitted changes in the proxy code\n'
} >>"$ROWS"
row() { # id title unit proxy direct ratio target verdict note
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$ROWS"
	printf '  %-5s %-52s proxy=%-8s direct=%-8s ratio=%-6s %s %s\n' "$1" "$2 ($3)" "$4" "$5" "$6" "$7" "$8" >&2
}
verdict() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "pass" : "MISS" }'; }
MISSES=0
# ratio_row ID TITLE LIMIT NOTE PROXY-VALUES... -- DIRECT-VALUES...
ratio_row() {
	local id=$1 title=$2 limit=$3 note=$4
	shift 4
	local pv=() dv=() rv=() i
	while [[ $1 != -- ]]; do pv+=("$1"); shift; done
	shift
	dv=("$@")
	for i in "${!pv[@]}"; do rv+=("$(ratio "${pv[i]}" "${dv[i]}")"); done
	local r v target="<= $limit"
	r=$(awk -v x="$(median "${rv[@]}")" 'BEGIN { printf "%.3f", x }')
	v=$(verdict "$r" "<=" "$limit")
	[[ $v == pass ]] || MISSES=$((MISSES + 1))
	row "$id" "$title" s "$(rnd "$(median "${pv[@]}")")" "$(rnd "$(median "${dv[@]}")")" "$r" "$target" "$v" \
		"$note; ratios per round: $(list "${rv[@]}"); proxy s: $(list "${pv[@]}"); nginx s: $(list "${dv[@]}")"
}

# profile_run REPO MODE: one cold makecache with the proxy's CPU profile
profile_run() {
	local r=$1 mode=$2 view secs=${BENCH_PROFILE_SECONDS:-15}
	view=$([[ $mode == annotate ]] && echo annotate || echo raw)
	start_proxy "$mode"
	curl -sf -H "Authorization: Bearer $TOKEN" -o "$OUT/cpu-$r-$view.pprof" \
		"$ADMIN/debug/pprof/profile?seconds=$secs" &
	local cpid=$!
	sleep 0.2
	local s
	s=$(dnf_time "$T/dnf/$r-proxy")
	wait "$cpid" || log "profile of $r $view failed"
	stop_proxy
	log "$r cold $view with profile: ${s}s; $OUT/cpu-$r-$view.pprof"
	go tool pprof -top -nodecount 40 "$T/bin/dnfproxy" "$OUT/cpu-$r-$view.pprof" >"$OUT/cpu-$r-$view.top" 2>/dev/null || true
}

for r in $REPOS; do
	dnf_conf "$T/dnf/$r-direct" "$DIRECT/$r/"
	dnf_conf "$T/dnf/$r-proxy" "$PROXY/$r/"
	dnf_conf "$T/dnf/$r-proxyraw" "$PROXY/$r@raw/"
	npk=$(python3 -c 'import gzip, re, sys; print(re.search(rb"packages=\"(\d+)\"", gzip.open(sys.argv[1]).read(4096)).group(1).decode())' "$WWW/$r"/repodata/*-primary.xml.gz)
	dnf_time "$T/dnf/$r-direct" >/dev/null # the page cache, nginx and dnf's own files
	log "$r ($npk packages): $ROUNDS cold rounds"
	D=() CA=() CR=() HWM=()
	for ((i = 0; i < ROUNDS; i++)); do
		for k in 0 1 2; do
			case $(((i + k) % 3)) in
			0) D+=("$(dnf_time "$T/dnf/$r-direct")") ;;
			1)
				start_proxy annotate
				CA+=("$(dnf_time "$T/dnf/$r-proxy")")
				annotated "$T/dnf/$r-proxy"
				stop_proxy
				;;
			2)
				start_proxy off
				CR+=("$(dnf_time "$T/dnf/$r-proxy")")
				stop_proxy
				;;
			esac
		done
		log "$r round $((i + 1)): direct ${D[i]}s, cold annotate ${CA[i]}s, cold raw ${CR[i]}s"
	done
	ratio_row "$r-ca" "$r: cold dnf makecache through annotate" 2 \
		"$npk packages; a fresh proxy store each run; reference $r-ref" "${CA[@]}" -- "${D[@]}"
	ratio_row "$r-cr" "$r: cold dnf makecache, raw (compat.mode off)" 1.5 \
		"a fresh proxy store each run" "${CR[@]}" -- "${D[@]}"

	log "$r: warm rounds"
	start_proxy annotate
	dnf_time "$T/dnf/$r-proxy" >/dev/null    # fetches the metadata, builds the view
	annotated "$T/dnf/$r-proxy"
	dnf_time "$T/dnf/$r-proxyraw" >/dev/null # and the raw view's files
	D=() WA=() WR=()
	for ((i = 0; i < ROUNDS; i++)); do
		for k in 0 1 2; do
			case $(((i + k) % 3)) in
			0) D+=("$(dnf_time "$T/dnf/$r-direct")") ;;
			1) WA+=("$(dnf_time "$T/dnf/$r-proxy")") ;;
			2) WR+=("$(dnf_time "$T/dnf/$r-proxyraw")") ;;
			esac
		done
	done
	stop_proxy
	ratio_row "$r-wa" "$r: warm dnf makecache through annotate" 1.05 \
		"one proxy holding the metadata and the built view; dnf cache empty each run" "${WA[@]}" -- "${D[@]}"
	ratio_row "$r-wr" "$r: warm dnf makecache through @raw" 1.05 \
		"the same warm proxy, the repo's raw view" "${WR[@]}" -- "${D[@]}"
	peak=$(printf '%s\n' "${HWM[@]}" | sort -n | tail -1)
	mib=$(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }')
	v=$(verdict "$mib" "<=" 96)
	[[ $v == pass ]] || MISSES=$((MISSES + 1))
	row "$r-rss" "$r: proxy peak RSS (VmHWM), all runs above" MiB "$mib" "" "" "<= 96" "$v" \
		"per proxy run (KiB; cold annotate and cold raw interleaved as run, then the warm proxy): ${HWM[*]}"

	if [[ $PROFILE == 1 ]]; then
		profile_run "$r" annotate
		profile_run "$r" off
	fi
done

printf '#load average at end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$ROWS"
"$BU" report "$ROWS" "$OUT/appstream.md" "$OUT/appstream.json"
log "results: $OUT/appstream.md, $OUT/appstream.json"
cat "$OUT/appstream.md"
if ((MISSES > 0)); then
	log "$MISSES target(s) missed"
	[[ ${BENCH_STRICT:-0} == 1 ]] && exit 1
fi
exit 0
