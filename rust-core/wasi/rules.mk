# wasmloop on WASI 0.2 (the wasmtime CLI): a Make fragment for the main
# Makefile, which includes it *after* defining COMPONENT, GENERATED, DEBIAN_CARGO,
# DEBIAN_RUSTC, WASM_TARGET, JCO and STAMPS (and the rules for $(STAMPS)/apt
# and node_modules/.package-lock.json).
#
#   $(WASI_IMPORTS)       the imports component (the core's clock and ready
#                         queue on WASI), to compose with the core and a program
#   $(WASI_ECHO_SERVER)   the TCP echo server, composed: imports -> core -> program,
#                         for `$(WASMTIME) run -S inherit-network $(WASI_ECHO_SERVER)`
#   $(WASI_ECHO_CLIENT)   a TCP echo client, composed the same way
#   $(WASI_CHECKS)        checks of the wasmloop-wasi crate itself (for test-wasi)
#   $(WASI_DRIVER)        the conformance driver (a program too), for
#                         test/conformance/wasmtime/rules.mk to compose
#
# Its tools, $(WASMTIME) (the wasmtime CLI) and $(WAC) (wac, which composes
# components), are defined and installed by the Makefile's tools section.

WASI_DIR          := rust-core/wasi
WASI_BUILD        := build/wasi
WASI_CARGO_OUT    := $(CARGO_TARGETS)/wasi-wasm/$(WASM_TARGET)/release
WASI_IMPORTS      := $(WASI_BUILD)/imports.component.wasm
WASI_ECHO_SERVER  := $(WASI_BUILD)/echo-server.wasm
WASI_ECHO_CLIENT  := $(WASI_BUILD)/echo-client.wasm
WASI_CHECKS       := $(WASI_BUILD)/checks.wasm
WASI_DRIVER       := $(WASI_BUILD)/conformance-driver.component.wasm
WASI_SOURCES      := $(shell find $(WASI_DIR) test/conformance/wasmtime/driver \( -name '*.rs' -o -name 'Cargo.*' -o -name '*.wit' \) -print) \
                     $(wildcard test/conformance/vectors/*.json) $(WIT_SOURCES)

.PHONY: wasi wasmtime test-wasi

# ---------------------------------------------------------------- tools

wasmtime: $(WASMTIME)

# ---------------------------------------------------------------- build

# Every crate's core module from one cargo workspace (one build of std).
# The programs embed the sha256 of the core component they are composed
# with (wasmloop_wasi::CORE_SHA256), so they are rebuilt when it changes.
WASI_MODULES := $(WASI_CARGO_OUT)/wasmloop_wasi_imports.wasm $(WASI_CARGO_OUT)/wasmloop_echo_server.wasm \
                $(WASI_CARGO_OUT)/wasmloop_echo_client.wasm $(WASI_CARGO_OUT)/wasmloop_wasi_checks.wasm \
                $(WASI_CARGO_OUT)/wasmloop_conformance_driver.wasm
$(WASI_MODULES) &: $(WASI_SOURCES) $(COMPONENT) | $(STAMPS)/apt
	cd $(WASI_DIR) && env -u RUSTUP_TOOLCHAIN RUSTC=$(DEBIAN_RUSTC) RUSTC_BOOTSTRAP=1 \
	  WASMLOOP_CORE_SHA256=$$(sha256sum $(abspath $(COMPONENT)) | cut -c1-64) \
	  $(DEBIAN_CARGO) build --quiet --release --locked --target $(WASM_TARGET) -Z build-std=std,panic_abort \
	  --target-dir $(CARGO_TARGETS)/wasi-wasm
	@mkdir -p $(WASI_BUILD)
	@touch $(WASI_MODULES)

WASI_ECHO_PROGRAM := $(WASI_BUILD)/echo-server.component.wasm
WASI_CLIENT_PROGRAM := $(WASI_BUILD)/echo-client.component.wasm
WASI_CHECKS_PROGRAM := $(WASI_BUILD)/checks.component.wasm

$(WASI_IMPORTS): $(WASI_CARGO_OUT)/wasmloop_wasi_imports.wasm node_modules/.package-lock.json
	$(JCO) new $< -o $@

$(WASI_ECHO_PROGRAM): $(WASI_CARGO_OUT)/wasmloop_echo_server.wasm node_modules/.package-lock.json
	$(JCO) new $< -o $@

$(WASI_CLIENT_PROGRAM): $(WASI_CARGO_OUT)/wasmloop_echo_client.wasm node_modules/.package-lock.json
	$(JCO) new $< -o $@

$(WASI_CHECKS_PROGRAM): $(WASI_CARGO_OUT)/wasmloop_wasi_checks.wasm node_modules/.package-lock.json
	$(JCO) new $< -o $@

$(WASI_DRIVER): $(WASI_CARGO_OUT)/wasmloop_conformance_driver.wasm node_modules/.package-lock.json
	$(JCO) new $< -o $@

# $(call wasi-compose,PROGRAM,OUT): PROGRAM (a component written with
# wasmloop-wasi) composed with the imports component and the core into the
# command OUT; then checks that OUT nests the core component byte for byte.
define wasi-compose
	$(WAC) compose $(WASI_DIR)/compose.wac -o $(2) \
	  --dep wasmloop:wasi-imports=$(WASI_IMPORTS) \
	  --dep wasmloop:core=$(COMPONENT) \
	  --dep wasmloop:program=$(1)
	node $(WASI_DIR)/nested.mjs $(2) $(COMPONENT)
endef

$(WASI_ECHO_SERVER): $(WASI_ECHO_PROGRAM) $(WASI_IMPORTS) $(COMPONENT) $(WASI_DIR)/compose.wac $(WAC)
	$(call wasi-compose,$<,$@)

$(WASI_ECHO_CLIENT): $(WASI_CLIENT_PROGRAM) $(WASI_IMPORTS) $(COMPONENT) $(WASI_DIR)/compose.wac $(WAC)
	$(call wasi-compose,$<,$@)

$(WASI_CHECKS): $(WASI_CHECKS_PROGRAM) $(WASI_IMPORTS) $(COMPONENT) $(WASI_DIR)/compose.wac $(WAC)
	$(call wasi-compose,$<,$@)

# The user-facing artifacts: the imports component, the echo server and client.
wasi: $(WASI_IMPORTS) $(WASI_ECHO_SERVER) $(WASI_ECHO_CLIENT)

# ---------------------------------------------------------------- check

# TCP echo under `wasmtime run -S inherit-network`, from Node: through the
# echo server (several connections at once, 1 MiB each, byte for byte, then
# a clean stop), and from the echo client to a Node server and to the echo
# server; then the crate's own checks (rust-core/wasi/checks). $(GENERATED):
# the core modules jco extracts, which the nested core must match.
test-wasi: $(WASI_ECHO_SERVER) $(WASI_ECHO_CLIENT) $(WASI_CHECKS) $(WASMTIME) $(GENERATED)
	WASMTIME=$(WASMTIME) WASI_ECHO_SERVER=$(WASI_ECHO_SERVER) WASI_ECHO_CLIENT=$(WASI_ECHO_CLIENT) WASI_CHECKS=$(WASI_CHECKS) node node_modules/uvu/bin.js test/conformance/wasmtime '\.check\.mjs$$'
