# Shell helpers shared by bench/run.sh and bench/appstream.sh (sourced).
# median and ratio call "$BU" (bench/benchutil), log is the caller's, and
# PIDS is the caller's list of processes to stop on exit.

median() { "$BU" median "$@"; }
ratio() { "$BU" ratio "$1" "$2"; }
rnd() { awk -v x="$1" 'BEGIN { printf "%.4g", x }'; }
list() {
	local x out=()
	for x in "$@"; do out+=("$(rnd "$x")"); done
	echo "${out[*]}"
}
forget_pid() { # removes $1 from PIDS
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
dnf_conf() { # dnf_conf DIR BASEURL
	mkdir -p "$1/repos.d" "$1/vars"
	cat >"$1/dnf.conf" <<EOF
[main]
gpgcheck=0
repo_gpgcheck=0
plugins=0
fastestmirror=0
skip_if_unavailable=False
metadata_expire=0
reposdir=$1/repos.d
varsdir=$1/vars
cachedir=$1/cache

[bench]
name=bench
baseurl=$2
EOF
}
dnf_time() { # dnf_time DIR → seconds of one `dnf makecache` with a fresh cache and root
	rm -rf "$1/cache" "$1/root"
	mkdir -p "$1/root"
	local t0 t1
	t0=$(date +%s.%N)
	env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
		LC_ALL=C.UTF-8 LANG=C.UTF-8 \
		"${DNF:-dnf}" -c "$1/dnf.conf" --installroot "$1/root" --releasever 9 -y \
		--setopt=metadata_expire=0 --refresh makecache >"$1/out.log" 2>&1 ||
		{
			log "dnf makecache failed ($1): $(tail -5 "$1/out.log")"
			return 1
		}
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
