#!/bin/sh
# Install every Debian package the build, the tests and `make run` need.
# As root: installs what is missing. Otherwise: prints the apt-get line.
PKGS="build-essential pkg-config liburing-dev libssl-dev libc-ares-dev liblmdb-dev
libcurl4-openssl-dev
zlib1g-dev
libinih-dev libcrypt-dev openssl python3 python3-pytest python3-dnslib
python3-aiosmtpd swaks dnsmasq-base iproute2 util-linux lmdb-utils gnuplot-nox whois
php-cli groff-base man-db python3-dkim python3-nacl opendkim-tools
prometheus unbound nsd ldnsutils libhiredis-dev redis-server
python3-cryptography"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages; run as root: apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null ||
	{ echo "apt-get install failed:$missing" >&2; exit 1; }
