# wsgate: `make run` builds and starts the gateway on its built-in demo config;
# `make test` builds and runs every test. Both install missing Debian packages first.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
RUN_ARGS   ?= --state-dir .wsgate-state

.PHONY: all deps helm-tools autobahn-tools centrifugo-tools test-centrifugo configure build build-all ui run test test-release test-asan bench docs clean format tidy fuzz

all: build

deps:
	@bash .ci/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

# helm and kubernetes-validate for tests/helm, into .tools/ (fast when already there)
helm-tools: deps
	@bash .ci/install-helm-tools.sh

# The Autobahn TestSuite (wstest, pinned, on pyenv's Python 2.7) for tests/integration/conformance,
# into .tools/autobahn (a no-op when already there)
autobahn-tools:
	@bash .ci/install-autobahn.sh

# Centrifugo (pinned; a Go build through the module proxy) for bench/centrifugo_bench.py and
# the bench.centrifugo_smoke test, into .tools/bin (a no-op when already there)
centrifugo-tools:
	@bash .ci/install-centrifugo.sh

configure: $(BUILD)/build.ninja

# What ships and what `make run` and the release tests need: the gateway, the benchmark tools
# and the admin UI. `make build-all` adds the C++ test binaries (which `make test` builds and runs
# under the sanitizers, in $(BUILD_ASAN)).
BINARIES = wsgate wsload wsecho fanout_load
build: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target $(BINARIES)
	$(MAKE) --no-print-directory ui UI_OUT=$(BUILD)/controlplane/main/admin-ui

build-all: build
	cmake --build $(BUILD) -j $(JOBS)

# The admin UI (npm ci + buf generate + vite build) into the admin-ui folder beside the binary;
# a no-op when that build is newer than every input.
UI_OUT ?= $(BUILD)/controlplane/main/admin-ui
ui:
	bash admin-ui/build.sh $(UI_OUT)

run: build
	./$(BUILD)/controlplane/main/wsgate $(RUN_ARGS)

# Every test: the release binaries end to end (ctest label `binary`), then everything, the C++
# test binaries included, against an AddressSanitizer + UBSan build. .ci/test.sh says why so.
test:
	BUILD=$(BUILD) BUILD_ASAN=$(BUILD_ASAN) JOBS=$(JOBS) bash .ci/test.sh

test-release: build helm-tools autobahn-tools
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600 -L binary

test-asan: deps helm-tools autobahn-tools
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWSGATE_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	$(MAKE) --no-print-directory ui UI_OUT=$(BUILD_ASAN)/controlplane/main/admin-ui
	ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS) --timeout 900 -LE centrifugo

# The fan-out comparison's smoke test (ctest label `centrifugo`) with its Centrifugo build. Not in
# `make test`: a fresh Go build of Centrifugo takes minutes of CPU (bench/README.md).
test-centrifugo: build centrifugo-tools
	ctest --test-dir $(BUILD) --output-on-failure --timeout 600 -L centrifugo

bench: build
	bash bench/run.sh

# The parser fuzz targets of tests/fuzz with clang + libFuzzer (installed when missing) into
# build-fuzz/, each run FUZZ_SECONDS on its seed corpus; prints executions and cov/ft per target.
# Not part of `make test` (which replays the same targets' corpora with g++, ctest fuzz.*).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) BUILD_FUZZ=$(CURDIR)/build-fuzz bash tests/fuzz/run.sh

# docs/operate.md from docs/operate.md.in: grpcurl into .tools/ (skipped when there), then every
# documented command run against a fresh demo wsgate. Not part of `make test`.
docs: build
	bash .ci/install-docs-tools.sh
	/usr/bin/python3 docs/gen_operate.py --wsgate $(BUILD)/controlplane/main/wsgate
	/usr/bin/python3 docs/check_links.py

format:
	find common dataplane controlplane tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

# clang-tidy (.clang-tidy) on the .cc files changed since TIDY_BASE (default: the last commit;
# `make tidy TIDY_BASE=main` before a merge, `TIDY_FILES=...` for a chosen set). Exits non-zero on
# any finding. Uses the compile commands of $(BUILD).
TIDY_BASE  ?= HEAD~1
TIDY_FILES ?= $(shell git diff --name-only --diff-filter=AMR $(TIDY_BASE) -- '*.cc' 2>/dev/null)
tidy: configure
	@command -v clang-tidy >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends clang-tidy)
	@if [ -z "$(strip $(TIDY_FILES))" ]; then echo "tidy: no .cc file changed since $(TIDY_BASE)"; \
	else cmake --build $(BUILD) --target wsgate_proto wsgate_grpc >/dev/null && \
	  clang-tidy -p $(BUILD) --quiet --warnings-as-errors='*' $(TIDY_FILES); fi

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
