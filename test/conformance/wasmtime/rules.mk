# The conformance vectors under the wasmtime CLI: a Make fragment for the main
# Makefile, which includes it after rust-core/wasi/rules.mk (the WASI host,
# the tools, and the wasi-compose function).
#
#   $(WASMTIME_CONFORMANCE)   imports -> core -> driver, one component for
#                             `$(WASMTIME) run $(WASMTIME_CONFORMANCE)`, which
#                             prints one JSON report (read by run.mjs)
#   test-conformance-wasmtime runs the vectors once and fails unless all pass
#
# The driver is a loop program like any other (driver/, a member of the
# rust-core/wasi workspace): the vectors run on the same host crate as users'
# programs.

WASMTIME_DIR          := test/conformance/wasmtime
WASMTIME_CONFORMANCE  := build/conformance-wasmtime.wasm

.PHONY: test-conformance-wasmtime

$(WASMTIME_CONFORMANCE): $(WASI_DRIVER) $(WASI_IMPORTS) $(COMPONENT) $(WASI_DIR)/compose.wac $(WAC)
	$(call wasi-compose,$<,$@)

test-conformance-wasmtime: $(WASMTIME_CONFORMANCE) $(WASI_ECHO_SERVER) $(WASI_ECHO_CLIENT) $(WASMTIME)
	@node --input-type=module -e "const {runWasmtime}=await import('./$(WASMTIME_DIR)/run.mjs'); \
	  const r=await runWasmtime({wasmtime:'$(WASMTIME)',component:'$(WASMTIME_CONFORMANCE)',coreComponent:'$(COMPONENT)',echoServer:'$(WASI_ECHO_SERVER)',echoClient:'$(WASI_ECHO_CLIENT)'}); \
	  const bad=r.results.filter((x)=>!x.pass); \
	  console.log(r.version+': '+(r.results.length-bad.length)+'/'+r.results.length+' vectors pass, core component '+r.componentSha256.slice(0,12)+(r.coreComponentInComposed?' nested unchanged':' NOT nested unchanged')+', TCP echo '+JSON.stringify(r.echo)); \
	  for(const x of bad) console.log('FAIL '+x.backend+' '+x.name+': got '+JSON.stringify(x.got)+', expected '+JSON.stringify(x.expect)); \
	  if(bad.length>0||!r.coreComponentInComposed||!Object.values(r.echo).every((e)=>e.pass)) process.exit(1)"
