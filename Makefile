# mta build. `make` builds build/{mta,mta-sink,mta-load}; `make test` builds an
# ASan+UBSan tree in build/san and runs every test; `make run` starts the relay
# on config/dev.conf. Sources are found by wildcard: a new .c file in a module
# directory is part of that module without touching this file.

BUILD   ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
SAN     ?=
STD     = -std=c11 -D_GNU_SOURCE -pthread
WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wpointer-arith -Wcast-qual -Wformat=2 -Wvla -Wimplicit-fallthrough \
          -Wundef -fno-common
HARDEN  = -fstack-protector-strong -fPIE
ifeq ($(SAN),)
HARDEN += -D_FORTIFY_SOURCE=2
endif
INC     = -I. -Imta
ALL_CFLAGS = $(STD) $(CFLAGS) $(SAN) $(WARN) $(HARDEN) $(INC) -MMD -MP
LDFLAGS_ALL = $(SAN) -pie -Wl,-z,relro,-z,now -pthread
LIBS    = -luring -lssl -lcrypto -lcares -llmdb -linih -lcrypt -lm
# hiredis: the Redis protocol for shared limits (mta/limits/limits_redis.c)
LIBS   += $(shell pkg-config --libs hiredis)
INC    += $(shell pkg-config --cflags-only-I hiredis)
# libcurl: the MTA-STS policy fetch (mta/sts/), HTTPS with its own checks,
# and the TLS reports' https: POST (mta/tlsrpt/)
LIBS   += $(shell pkg-config --libs libcurl)

# zlib: TLS-RPT reports are sent gzipped (mta/tlsrpt/, RFC 8460 5)
LIBS   += -lz

LIB_SRC = $(wildcard mta/*/*.c config/*.c queue/*.c dns/*.c) \
          $(filter-out mta/main.c mta/sendmail_main.c,$(wildcard mta/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC = $(wildcard tests/unit/*_test.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SHIM_SRC = $(wildcard tests/shim/*.c)
SHIM_SO  = $(SHIM_SRC:tests/shim/%.c=$(BUILD)/tests/%.so)
PROGS   = $(BUILD)/mta $(BUILD)/mta-sink $(BUILD)/mta-load $(BUILD)/mta-sendmail
# Man pages: written in man/, except mta.conf(5) whose KEYS section is
# made from config/mta.conf.example (itself checked against the key table).
MAN     = man/mta.8 man/mta-load.1 man/mta-sink.1 $(BUILD)/man/mta.conf.5

.SECONDARY:
.PHONY: all deps run test test-tsan unit integration clean install uninstall \
    check-headers bench
all: $(PROGS) $(BUILD)/man/mta.conf.5

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/man/mta.conf.5: man/mta.conf.5.in man/mta-conf-keys.awk \
    config/mta.conf.example mta/base/compat.h
	@mkdir -p $(dir $@)
	@echo "GEN $@"
	@awk -f man/mta-conf-keys.awk config/mta.conf.example > $@.keys
	@v=$$(sed -n 's/^#define MTA_VERSION "\(.*\)"/\1/p' mta/base/compat.h); \
	sed -e '/^\.@KEYS@$$/{r $@.keys' -e 'd}' -e "s/@VERSION@/$$v/" \
	    man/mta.conf.5.in > $@.tmp
	@rm -f $@.keys
	@mv $@.tmp $@

$(BUILD)/libmta.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/mta: $(BUILD)/obj/mta/main.o $(BUILD)/libmta.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# The lean sendmail: only what a submission needs is taken from the
# archive (libc and inih), so a start does not load OpenSSL and the rest;
# static (a start then maps nothing: 25% more submissions a second) except
# under a sanitizer, which needs the dynamic runtime. ld warns that a
# static getpwuid() needs the NSS modules of this glibc at run time: the
# "files" source is inside libc since glibc 2.34, and without a name the
# sender is "uidN" (sendmail_run.c), so that warning is silenced.
ifeq ($(SAN),)
SENDMAIL_LD = -static-pie -Wl,--no-warnings
endif
$(BUILD)/mta-sendmail: $(BUILD)/obj/mta/sendmail_main.o $(BUILD)/libmta.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) $(SENDMAIL_LD) -Wl,--as-needed -o $@ $^ -linih

$(BUILD)/mta-sink: $(BUILD)/obj/bench/sink.o $(BUILD)/obj/bench/sink_conn.o \
    $(BUILD)/obj/bench/sink_auth.o $(BUILD)/obj/bench/sink_dump.o \
    $(BUILD)/libmta.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/mta-load: $(BUILD)/obj/bench/load.o $(BUILD)/obj/bench/load_conn.o \
    $(BUILD)/obj/bench/load_stats.o $(BUILD)/obj/bench/load_pace.o \
    $(BUILD)/obj/bench/load_msg.o \
    $(BUILD)/libmta.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libmta.a
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# LD_PRELOAD shims for fault injection; never sanitized (they load into
# processes that may not be).
$(BUILD)/tests/%.so: tests/shim/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

deps:
	@sh scripts/deps.sh

run: deps all
	@sh scripts/dev-run.sh $(BUILD)

# The test build: sanitizers on, separate tree, then every test.
test: deps
	$(MAKE) BUILD=build/san SAN="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all units
	@sh tests/run.sh build/san

# The same tests on a ThreadSanitizer tree (build/tsan): a data race or a
# lock-order inversion in any process is a failed test (tests/run.sh).
TSAN = -O1 -g -fsanitize=thread -fno-omit-frame-pointer
test-tsan: deps
	$(MAKE) BUILD=build/tsan SAN="$(TSAN)" all units
	@sh tests/run.sh build/tsan

units: $(UNIT_BIN) $(SHIM_SO)

check-headers:
	@for h in $$(find mta config queue dns -name '*.h'); do \
	  echo "#include \"$$h\"" | $(CC) $(STD) $(WARN) $(INC) -x c -fsyntax-only - || exit 1; done

bench: all
	@/usr/bin/python3 bench/relay-bench --build $(BUILD) $(BENCH_ARGS)

# PREFIX=/usr/local by default, DESTDIR for packaging. sendmail and mailq
# are links to mta; another MTA's files of those names are never replaced.
# scripts/install.sh: man pages, the unit, a default configuration (never
# over one that exists) and the queue; uninstall keeps those two.
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
SPOOLDIR ?= /var/spool/mta
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
MTA_USER ?= mta
INSTALL_ENV = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" BUILD="$(BUILD)" \
    SYSCONFDIR="$(SYSCONFDIR)" SPOOLDIR="$(SPOOLDIR)" MANDIR="$(MANDIR)" \
    UNITDIR="$(UNITDIR)" MTA_USER="$(MTA_USER)"
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	@sh scripts/install-sendmail.sh "$(DESTDIR)" "$(PREFIX)"
	@$(INSTALL_ENV) sh scripts/install.sh install

uninstall:
	@$(INSTALL_ENV) sh scripts/install.sh uninstall

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
