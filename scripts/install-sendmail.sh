#!/bin/sh
# install-sendmail.sh DESTDIR PREFIX - the sendmail and mailq names of mta:
# $PREFIX/sbin/sendmail and $PREFIX/bin/mailq, symbolic links to
# $PREFIX/bin/mta (mta behaves as `mta sendmail` / `mta sendmail -bp` when
# run by those names). A file already there that is not such a link
# belongs to another MTA: it is left alone, with a message, never
# overwritten.
DESTDIR=$1
PREFIX=${2:-/usr/local}
MTA=$PREFIX/bin/mta
status=0
for pair in sbin/sendmail bin/mailq; do
	target=$DESTDIR$PREFIX/$pair
	mkdir -p "$(dirname "$target")" || exit 1
	if [ -e "$target" ] || [ -L "$target" ]; then
		if [ -L "$target" ] && [ "$(readlink "$target")" = "$MTA" ]; then
			continue # ours already
		fi
		echo "install: $PREFIX/$pair exists and is not mta's: left alone" \
			"(point programs at $PREFIX/bin/mta sendmail instead)" >&2
		continue
	fi
	ln -s "$MTA" "$target" || status=1
	echo "install: $PREFIX/$pair -> $MTA"
done
exit $status
