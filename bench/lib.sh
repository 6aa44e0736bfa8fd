# Shell helpers shared by bench/run.sh and bench/appstream.sh (sourced).
# median and ratio call "$BU" (bench/benchutil), log and die are the
# caller's, NGINX is the nginx binary, and PIDS is the caller's list of
# processes to stop on exit.

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
nginx_start() { # nginx_start DIR HTTP: nginx in the background on DIR/nginx.conf, whose http block ends with HTTP (types, servers); sets NGINX_PID
	local dir=$1 user=""
	[[ $(id -u) == 0 ]] && user="user root;" # workers may read root's temporary files
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	client_body_temp_path $dir/client_body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	default_type application/octet-stream;
$2
}
EOF
	"$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -t -q ||
		die "nginx rejects the generated config ($dir/nginx.conf)"
	"$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" &
	NGINX_PID=$!
	PIDS+=("$NGINX_PID")
}
