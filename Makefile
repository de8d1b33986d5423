# wsgate: `make run` builds and starts the gateway on its built-in demo config;
# `make test` builds and runs every test. Both install missing Debian packages first.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
RUN_ARGS   ?= --state-dir .wsgate-state

.PHONY: all deps helm-tools configure build run test test-release test-asan bench clean format

all: build

deps:
	@bash .ci/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

# helm and kubernetes-validate for tests/helm, into .tools/ (fast when already there)
helm-tools: deps
	@bash .ci/install-helm-tools.sh

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/controlplane/main/wsgate $(RUN_ARGS)

# Every test twice: against the release build, then against an AddressSanitizer + UBSan build.
test: test-release test-asan

test-release: build helm-tools
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600

test-asan: deps helm-tools
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWSGATE_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS) --timeout 900

bench: build
	bash bench/run.sh

format:
	find common dataplane controlplane tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
