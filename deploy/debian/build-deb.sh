#!/bin/sh
# Builds pingmachine's Debian package for one architecture from a binary built for it.
#
#   SOURCE_DATE_EPOCH=... build-deb.sh DEBARCH BINARY VERSION OUTDIR HOSTBINARY
#
# DEBARCH is amd64, armhf or arm64; VERSION the upstream version (version.sh), to which
# the package adds the Debian revision -1; HOSTBINARY a pingmachine that runs here, whose
# `help` becomes the man page's synopsis. Writes OUTDIR/pingmachine_VERSION-1_DEBARCH.deb.
#
# Built with dpkg-deb rather than nfpm: the package is a handful of files, dpkg-deb is on
# every Debian and is what Debian itself builds with, and it adds no Go dependency to the
# daemon's module. It is reproducible: every file gets the time SOURCE_DATE_EPOCH (which
# dpkg-deb also uses for the archive members), root as owner (--root-owner-group), a mode
# set here, and dpkg-deb sorts the entries.
set -eu

if [ $# -ne 5 ]; then
	echo "usage: SOURCE_DATE_EPOCH=... $0 DEBARCH BINARY VERSION OUTDIR HOSTBINARY" >&2
	exit 2
fi
arch=$1 binary=$2 version=$3-1 out=$4 host=$5
for file in "$binary" "$host"; do
	[ -f "$file" ] || { echo "$0: no binary $file" >&2; exit 2; }
done
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH, for example to the last commit time}"
: "${DEB_MAINTAINER:=pingmachine maintainers <maintainers@users.noreply.h-seed-2e47f27d.example>}"
here=$(cd "$(dirname "$0")" && pwd)
top=$here/../..
# The repository's unit; another only in the tests of this script.
unit_source=${UNIT_SOURCE:-$top/cmd/pingmachine/pingmachine.service}

case $arch in
amd64 | armhf | arm64) ;;
*)
	echo "$0: unknown architecture $arch (amd64, armhf or arm64)" >&2
	exit 2
	;;
esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022
export LC_ALL=C TZ=UTC

install -D -m 0755 "$binary" "$stage/usr/bin/pingmachine"

# The repository's hardened unit, with the packaged binary and the flags of
# /etc/default/pingmachine; its header (about `make install`) gives way to one line.
unit=$stage/lib/systemd/system/pingmachine.service
mkdir -p "$(dirname "$unit")"
{
	echo "# pingmachine's systemd unit, from its Debian package; flags in /etc/default/pingmachine."
	sed -e '1,/^\[Unit\]/{/^#/d}' -e 's|^Description=.*|&\nDocumentation=man:pingmachine(8)|' \
		-e 's|^ExecStart=/usr/local/bin/pingmachine \(.*\)$|EnvironmentFile=-/etc/default/pingmachine\nExecStart=/usr/bin/pingmachine \1 $PINGMACHINE_OPTS|' \
		"$unit_source"
} >"$unit"
if ! grep -q '^ExecStart=/usr/bin/pingmachine .* \$PINGMACHINE_OPTS$' "$unit"; then
	echo "$0: $unit_source has no ExecStart=/usr/local/bin/pingmachine line to rewrite" >&2
	exit 1
fi

install -D -m 0644 "$here/default" "$stage/etc/default/pingmachine"
install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/pingmachine"

doc=$stage/usr/share/doc/pingmachine
mkdir -p "$doc"
sed "s|@MAINTAINER@|$DEB_MAINTAINER|" "$here/copyright" >"$doc/copyright"
commit=$(git -C "$top" rev-parse --short=12 HEAD)
date=$(date -R -d "@$SOURCE_DATE_EPOCH")
sed -e "s|@VERSION@|$version|" -e "s|@COMMIT@|$commit|" -e "s|@MAINTAINER@|$DEB_MAINTAINER|" -e "s|@DATE@|$date|" \
	"$here/changelog" | gzip -9n >"$doc/changelog.Debian.gz"
gzip -9n <"$top/README.md" >"$doc/README.md.gz"

# The man page's synopsis is the binary's own usage, escaped for troff.
usage=$("$host" help 2>&1 | sed -e 's/^usage: //' -e 's/^       //' -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\([.']\)/\\\\\&\1/")
man=$stage/usr/share/man/man8/pingmachine.8
mkdir -p "$(dirname "$man")"
# Through the environment: awk would read escapes in a -v value (the troff's backslashes).
USAGE=$usage VERSION=$version DAY=$(date -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d) awk '
	/^@USAGE@$/ { print ENVIRON["USAGE"]; next }
	{ gsub(/@VERSION@/, ENVIRON["VERSION"]); gsub(/@DATE@/, ENVIRON["DAY"]); print }
' "$here/pingmachine.8" | gzip -9n >"$man.gz"

mkdir -p "$stage/DEBIAN"
for script in postinst prerm postrm; do
	install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
echo /etc/default/pingmachine >"$stage/DEBIAN/conffiles"
(cd "$stage" && find usr lib -type f | sort | xargs md5sum) >"$stage/DEBIAN/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: pingmachine
Version: $version
Architecture: $arch
Maintainer: $DEB_MAINTAINER
Installed-Size: $size
Depends: adduser
Recommends: libcap2-bin
Suggests: rrdtool
Section: net
Priority: optional
Description: latency and loss measurement for many targets (Smokeping-like)
 pingmachine pings thousands of targets from one process with its own ICMP
 engine, as its YAML orders below /var/lib/pingmachine/orders ask, and writes
 Smokeping-style RRD files, last_result files and optionally InfluxDB lines
 to telegraf. It is a drop-in replacement for the Perl pingmachine.
 .
 The package runs the daemon as the system user pingmachine under a hardened
 systemd unit whose only capability is CAP_NET_RAW.
CONTROL

chmod 0755 "$stage"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/pingmachine_${version}_$arch.deb" >/dev/null
echo "$out/pingmachine_${version}_$arch.deb"
