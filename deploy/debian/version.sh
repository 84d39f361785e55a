#!/bin/sh
# Prints pingmachine's upstream version, made for Debian from `git describe` of the work
# tree DIR (by default this one's): the Debian package's version is this and "-1", and
# `pingmachine --version` prints this.
#   no tag yet:        0.0~git<UTC commit time>.<hash>   (sorts below any release)
#   on tag v1.2.0:     1.2.0
#   5 commits later:   1.2.0+git<UTC commit time>.<hash> (above 1.2.0, below 1.2.1)
#   uncommitted edits: +dirty at the end
# The commit time (YYYYMMDDhhmmss, not just the day) makes builds of later commits sort
# later even on the same day.
#
# usage: version.sh [DIR]
set -eu
cd "${1:-$(dirname "$0")}"
desc=$(git describe --tags --always --dirty)
stamp=$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd)
dirty=
case $desc in *-dirty) dirty=+dirty desc=${desc%-dirty} ;; esac
case $desc in
*-[0-9]*-g[0-9a-f]*)
	hash=${desc##*-g}
	tag=${desc%-*-g*}
	upstream=${tag#v}+git$stamp.$hash
	;;
*)
	if git rev-parse -q --verify "refs/tags/$desc" >/dev/null; then
		upstream=${desc#v}
	else
		upstream=0.0~git$stamp.$desc
	fi
	;;
esac
# Debian versions allow no "-" in the upstream part of a revisioned version: a tag such as
# v1.0-rc1 becomes 1.0~rc1, which sorts before 1.0 as a release candidate should.
echo "$upstream$dirty" | tr - '~'
