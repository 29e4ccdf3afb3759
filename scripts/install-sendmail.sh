#!/bin/sh
# install-sendmail.sh DESTDIR PREFIX - the sendmail and mailq names of mta:
# $PREFIX/sbin/sendmail and $PREFIX/bin/mailq, symbolic links to
# $PREFIX/bin/mta-sendmail (the same code as `mta sendmail`, in a program
# that starts without loading OpenSSL and the rest; as mailq it is
# `sendmail -bp`). A file already there that is not a link to mta-sendmail
# or mta belongs to another MTA: it is left alone, with a message, never
# overwritten.
DESTDIR=$1
PREFIX=${2:-/usr/local}
MTA=$PREFIX/bin/mta-sendmail
status=0
for pair in sbin/sendmail bin/mailq; do
	target=$DESTDIR$PREFIX/$pair
	mkdir -p "$(dirname "$target")" || exit 1
	if [ -e "$target" ] || [ -L "$target" ]; then
		if [ -L "$target" ] && { [ "$(readlink "$target")" = "$MTA" ] ||
			[ "$(readlink "$target")" = "$PREFIX/bin/mta" ]; }; then
			continue # ours already
		fi
		echo "install: $PREFIX/$pair exists and is not mta's: left alone" \
			"(point programs at $PREFIX/bin/mta-sendmail instead)" >&2
		continue
	fi
	ln -s "$MTA" "$target" || status=1
	echo "install: $PREFIX/$pair -> $MTA"
done
exit $status
