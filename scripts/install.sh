#!/bin/sh
# install.sh install|uninstall - what `make install` puts beyond the
# programs: the man pages, a default configuration, the queue directory
# and the systemd unit. Driven by the Makefile's variables, passed in the
# environment: DESTDIR PREFIX SYSCONFDIR SPOOLDIR MANDIR UNITDIR BUILD
# MTA_USER.
#
# The configuration is the admin's: installed only when there is none
# (the default is config/mta.conf.example with every key commented out
# at its default, user = MTA_USER and the queue at SPOOLDIR), never
# replaced, and left by uninstall, like the queue (Debian's "remove"
# keeps conffiles and data; only "purge" deletes them). The unit and the
# man pages are ours: replaced on every install, removed by uninstall.
set -e
: "${PREFIX:=/usr/local}" "${SYSCONFDIR:=/etc}" "${SPOOLDIR:=/var/spool/mta}"
: "${MANDIR:=$PREFIX/share/man}" "${UNITDIR:=$PREFIX/lib/systemd/system}"
: "${BUILD:=build}" "${MTA_USER:=mta}"
D=$DESTDIR
CONF=$SYSCONFDIR/mta/mta.conf
PAGES="man8/mta.8 man5/mta.conf.5 man1/mta-load.1 man1/mta-sink.1"

# The page's source: written in man/, mta.conf(5) generated in BUILD.
page_src() {
	case $1 in
	man5/mta.conf.5) echo "$BUILD/man/mta.conf.5" ;;
	*) echo "man/${1#*/}" ;;
	esac
}

default_conf() {
	sed -e '1s/.*/# mta.conf - written by `make install` from mta.conf.example: every\n# key, commented out at its default. Set what you need, then run\n# `mta check-config`; mta.conf(5) says what each key does./' \
	    -e 's/^\([a-z_][a-z_]* *=\)/;\1/' \
	    -e "s|^;user = *|user = $MTA_USER |" \
	    -e "s|^;path = [^ ]* *|path = $SPOOLDIR |" \
	    config/mta.conf.example
}

# root, no DESTDIR, and the account exists: give PATH to OWNER now;
# otherwise say what to run (`mta serve` gives the queue to its user at
# start anyway).
own() { # PATH OWNER
	if [ -z "$D" ] && [ "$(id -u)" = 0 ] &&
	    getent passwd "$MTA_USER" >/dev/null 2>&1; then
		chown "$2" "$D$1"
	else
		echo "install: once user $MTA_USER exists: chown $2 $1"
	fi
}

case $1 in
install)
	for p in $PAGES; do
		install -d "$D$MANDIR/${p%/*}"
		install -m 644 "$(page_src "$p")" "$D$MANDIR/$p"
	done
	install -d "$D$UNITDIR"
	sed -e "s|@BINDIR@|$PREFIX/bin|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
	    -e "s|@SPOOLDIR@|$SPOOLDIR|g" config/mta.service.in \
	    >"$D$UNITDIR/mta.service.tmp"
	chmod 644 "$D$UNITDIR/mta.service.tmp"
	mv "$D$UNITDIR/mta.service.tmp" "$D$UNITDIR/mta.service"
	install -d -m 755 "$D$SYSCONFDIR/mta"
	if [ -e "$D$CONF" ]; then
		echo "install: $CONF exists: left alone"
	else
		default_conf >"$D$CONF.tmp"
		# 0644: local programs read it (mta-sendmail finds the socket
		# there); it holds no secret until a route password is added
		chmod 644 "$D$CONF.tmp"
		mv "$D$CONF.tmp" "$D$CONF"
		echo "install: $CONF (user = $MTA_USER, queue $SPOOLDIR)"
	fi
	if [ ! -d "$D$SPOOLDIR" ]; then
		install -d -m 750 "$D$SPOOLDIR"
		own "$SPOOLDIR" "$MTA_USER:$MTA_USER"
	fi
	;;
uninstall)
	for p in $PAGES; do rm -f "$D$MANDIR/$p"; done
	rm -f "$D$UNITDIR/mta.service"
	for l in sbin/sendmail bin/mailq; do
		t=$(readlink "$D$PREFIX/$l" 2>/dev/null) || continue
		case $t in
		"$PREFIX/bin/mta-sendmail" | "$PREFIX/bin/mta") rm -f "$D$PREFIX/$l" ;;
		esac
	done
	for b in mta mta-sink mta-load mta-sendmail; do
		rm -f "$D$PREFIX/bin/$b"
	done
	echo "uninstall: kept $CONF and the queue $SPOOLDIR" \
	    "(remove them by hand to purge)"
	;;
*)
	echo "usage: install.sh install|uninstall" >&2
	exit 2
	;;
esac
