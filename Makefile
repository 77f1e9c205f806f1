# fleetmcp: an MCP tool server for GPU fleets.  See README.md.
#
# Layout: src/<layer>/*.c form libfleetmcp.a; src/main.c is the server;
# tools/mcp-cli/*.c is the operator CLI; tests/unit/test_*.c are Check
# programs, one per subsystem.  The tool table is generated at build time
# from schemas/tools/*.json (see tools/gen-registry.py), so it cannot go
# stale.

BUILD   ?= build
CC      ?= cc
PYTHON  ?= python3
# pkg-config packages the build compiles and links against: adding a
# library is one word here (and its -dev package in tools/deps.sh).
PKGS    := jansson libcurl yaml-0.1 sqlite3 libssh2 libcrypto libpcre2-8 cjose libmicrohttpd libpq
# Compiled against but not linked: src/util/*_lazy.c (libmicrohttpd:
# src/transport/http.c, only under --http) load them on first use.
# Linked, they cost milliseconds at every start (libcurl ~6 ms; libssh2
# and zlib; libpq and its TLS, Kerberos and LDAP libraries), and most
# processes never call them (HTTP backends, SSH actions, a PostgreSQL
# store; libyaml: YAML is read only for a config file, runbooks and
# signatures; PCRE2: patterns are compiled on a schema's or signature's
# first use).  libcrypto and cjose (crypto_lazy.c) load together, called
# through a table of pointers, never through wrappers named like their
# functions: those would take libcjose's own calls into libcrypto too.
LAZY_PKGS := libcurl libssh2 libmicrohttpd libcrypto cjose libpq yaml-0.1 libpcre2-8
# Linked from its archive (libsqlite3-dev ships it): Debian builds
# libsqlite3.so with BIND_NOW, so the shared library costs every start
# ~1,600 symbol lookups (~1.1 M instructions, 40% of answering one
# initialize); linked in, its calls are direct and nothing is looked up.
# Its own dependency, libm, is linked anyway.  A SQLite security update
# then needs fleetmcp rebuilt (the Debian package's rebuild does it).
STATIC_PKGS := sqlite3
STATIC_LIBS := -l:libsqlite3.a
OPT     ?= -O2 -g
# Read when make parses this file.  On a fresh machine the packages arrive
# only when `make deps` runs, so every target that runs deps builds in a
# second make (see demo, check) that parses after it.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(filter-out $(LAZY_PKGS) $(STATIC_PKGS),$(PKGS)) 2>/dev/null) \
              $(STATIC_LIBS)
PKG_MISSING := $(shell pkg-config --exists $(PKGS) 2>/dev/null || echo y)
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
           -Iinclude -I$(BUILD)/gen $(OPT) $(EXTRA_CFLAGS) $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -ldl -lpthread -lm
LDFLAGS += $(EXTRA_LDFLAGS)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
# libedit (line editing in `mcp-cli shell`) is linked into mcp-cli only:
# the server's cold start does not pay for it.  -ledit when pkg-config
# runs before `make deps` has installed libedit-dev.
EDIT_LIBS := $(or $(shell pkg-config --libs libedit 2>/dev/null),-ledit)

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path src/main.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/tools.gen.o \
            $(BUILD)/obj/gen/actions.gen.o
CLI_SRC  := $(sort $(wildcard tools/mcp-cli/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_JSON := $(sort $(shell find schemas -name '*.json' ! -path 'schemas/actions/*'))
ACTION_JSON := $(sort $(wildcard schemas/actions/*.json))
DEPFLAGS = -MMD -MP

.PHONY: all deps pkgs check unit asan tsan protocol interop integration fuzz fuzz-smoke \
        bench demo clean install uninstall lint stack-up stack-down print-pkgs
.DEFAULT_GOAL := all

all: $(BUILD)/fleetmcp $(BUILD)/mcp-cli

# Without its packages the build would fail at the link, with pages of
# undefined references; say what to do instead.
pkgs:
ifdef PKG_MISSING
	@echo "NOTFOUND: pkg-config cannot find all of $(PKGS): run 'make deps' (it installs them), then make again" >&2; exit 1
endif

$(BUILD)/gen/tools.gen.c: tools/gen-registry.py $(TOOL_JSON) | pkgs
	@mkdir -p $(@D)
	$(PYTHON) tools/gen-registry.py schemas/tools $@

# The runbook action table, from schemas/actions/*.json by the same script.
$(BUILD)/gen/actions.gen.c: tools/gen-registry.py $(ACTION_JSON) $(wildcard schemas/tools/*.json) \
                          | pkgs
	@mkdir -p $(@D)
	$(PYTHON) tools/gen-registry.py --actions schemas/actions $@

$(BUILD)/obj/gen/%.gen.o: $(BUILD)/gen/%.gen.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# Every object may include the generated handler and executor prototypes.
$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/tools.gen.c $(BUILD)/gen/actions.gen.c pkgs
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/libfleetmcp.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fleetmcp: $(BUILD)/obj/src/main.o $(BUILD)/libfleetmcp.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mcp-cli: $(CLI_OBJ) $(BUILD)/libfleetmcp.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(EDIT_LIBS)

# mcp-cli's quoting, argument and output rules are unit-tested with its
# own objects.
CLI_UNIT_OBJ := $(BUILD)/obj/tools/mcp-cli/args.o $(BUILD)/obj/tools/mcp-cli/format.o
$(BUILD)/tests/test_cli_args: tests/unit/test_cli_args.c $(CLI_UNIT_OBJ) $(BUILD)/libfleetmcp.a \
                              tests/unit/fm_test.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $@.d -o $@ $< $(CLI_UNIT_OBJ) $(BUILD)/libfleetmcp.a \
	  $(LDFLAGS) $(LDLIBS) $(CHECK_LIBS)

# test_auth makes its keys and tokens with libcjose itself; fleetmcp's own
# calls still go through crypto_lazy.c (dlopen finds the same instance).
$(BUILD)/tests/test_auth: LDLIBS += $(shell pkg-config --libs cjose 2>/dev/null)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libfleetmcp.a tests/unit/fm_test.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -MF $@.d -o $@ $< $(BUILD)/libfleetmcp.a $(LDFLAGS) $(LDLIBS) $(CHECK_LIBS)

# The conformance suite's fixture server: libfleetmcp with its own tool
# table, generated from tests/conformance/fixture/tools by the same script.
FIX_DIR := tests/conformance/fixture
$(BUILD)/conformance/gen/tools.gen.c: tools/gen-registry.py $(wildcard $(FIX_DIR)/tools/*.json) $(TOOL_JSON)
	@mkdir -p $(@D)
	$(PYTHON) tools/gen-registry.py $(FIX_DIR)/tools $@ schemas

$(BUILD)/conformance/%.o: $(BUILD)/conformance/gen/%.c
	$(CC) -I$(BUILD)/conformance/gen $(CFLAGS) -c $< -o $@

$(BUILD)/conformance/fixture.o: $(FIX_DIR)/fixture.c $(BUILD)/conformance/gen/tools.gen.c
	$(CC) -I$(BUILD)/conformance/gen $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/conformance-fixture: $(BUILD)/conformance/fixture.o $(BUILD)/conformance/tools.gen.o \
                              $(BUILD)/libfleetmcp.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- setup --------------------------------------------------------------
deps:
	@sh tools/deps.sh

# --- tests --------------------------------------------------------------
# `make check` is what CI and newcomers run: it installs what is missing,
# builds, runs unit tests (plain and under ASan+UBSan), the raw protocol
# test, real-client interop, integration tests against the local stack,
# and a bounded fuzz run.  `make check STAGE=name` runs one stage (or a
# group: STAGE=interop, STAGE=integration); tests/run-check.sh names them.
# run-check.sh builds in its own make, which reads pkg-config after deps.
# STAGE counts only from the command line: a STAGE in the environment (some
# CI systems set one) must not quietly shrink `make check`.
check: deps
	@bash tests/run-check.sh $(if $(filter command line,$(origin STAGE)),$(STAGE))

# Stage groups by name, through the same harness as `make check`.
protocol interop integration:
	@bash tests/run-check.sh $@

unit: $(UNIT_BIN) all
	@sh tests/run-unit.sh $(BUILD)

asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" unit

# ThreadSanitizer over the HTTP service's serving threads: its build of
# fleetmcp and the conformance fixture, then the HTTP tests that run
# several threads (both layouts, the back channel, tasks forked from a
# serving thread, group commit).  A race makes a server exit non-zero at
# SIGTERM (a failed check) and leaves its report in build/tsan/report.*.
# -O2 as the normal build (-O1 trips -Wformat-truncation in tools/).
TSAN_TESTS := workers.py:fleetmcp backchannel.py:conformance-fixture:fleetmcp \
	tasks.py:fleetmcp:conformance-fixture group_commit.py:fleetmcp
tsan:
	$(MAKE) BUILD=build/tsan OPT="-O2 -g" EXTRA_CFLAGS="-fsanitize=thread" \
	  EXTRA_LDFLAGS="-fsanitize=thread" build/tsan/fleetmcp build/tsan/conformance-fixture
	rm -f build/tsan/report.*
	set -e; for t in $(TSAN_TESTS); do \
	  args=$$(echo $$t | cut -d: -f2- | tr : '\n' | sed 's|^|build/tsan/|' | tr '\n' ' '); \
	  TSAN_OPTIONS="log_path=$(CURDIR)/build/tsan/report second_deadlock_stack=1" \
	    python3 tests/http/$${t%%:*} $$args; done
	@if ls build/tsan/report.* >/dev/null 2>&1; then cat build/tsan/report.*; exit 1; fi

fuzz-smoke:
	@bash tests/fuzz/run.sh 60

fuzz:
	@bash tests/fuzz/run.sh 1800

bench: all
	@bash bench/run.sh

# The build is a second make, so that it reads pkg-config after deps ran.
demo: deps
	@$(MAKE) --no-print-directory all
	@bash examples/demo.sh

stack-up: all
	@bash tests/stack/up.sh

stack-down:
	@bash tests/stack/down.sh

# The package list, for scripts that build against libfleetmcp.a (tests,
# bench, fuzz), so that a package added above reaches them too.
print-pkgs:
	@echo $(PKGS)

lint:
	clang-format --dry-run --Werror $$(find src include tools tests bench -name node_modules -prune -o -name '*.[ch]' -print)

PREFIX ?= /usr/local
DOCDIR ?= $(PREFIX)/share/doc/fleetmcp
# share/fleetmcp must stay at ../share/fleetmcp from bin/: fleetmcp finds its
# runbooks relative to its own executable.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/fleetmcp \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(DOCDIR)/examples/grafana \
	  $(DESTDIR)$(DOCDIR)/examples/vscode/.vscode
	install -m 755 $(BUILD)/fleetmcp $(BUILD)/mcp-cli $(DESTDIR)$(PREFIX)/bin/
	cp -R schemas runbooks $(DESTDIR)$(PREFIX)/share/fleetmcp/
	chmod -R u=rwX,go=rX $(DESTDIR)$(PREFIX)/share/fleetmcp
	install -m 644 man/fleetmcp.1 man/mcp-cli.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 examples/README.md examples/fleetmcp.yaml examples/claude-code.md \
	  examples/claude_desktop_config.json examples/session.jsonl \
	  examples/session.replies.jsonl $(DESTDIR)$(DOCDIR)/examples/
	install -m 644 examples/grafana/fleetmcp-dashboard.json $(DESTDIR)$(DOCDIR)/examples/grafana/
	install -m 644 examples/vscode/.vscode/mcp.json $(DESTDIR)$(DOCDIR)/examples/vscode/.vscode/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/fleetmcp $(DESTDIR)$(PREFIX)/bin/mcp-cli \
	  $(DESTDIR)$(PREFIX)/share/man/man1/fleetmcp.1 $(DESTDIR)$(PREFIX)/share/man/man1/mcp-cli.1
	rm -rf $(DESTDIR)$(PREFIX)/share/fleetmcp $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
