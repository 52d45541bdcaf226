# Thin wrapper over CMake.  `make run` and `make test` are the two commands a
# fresh Debian 12 machine needs; both install missing packages first.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
CONFIG ?= configs/provd.yaml
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build run demo test test-asan test-normal bench fuzz package clean

all: build

deps:
	@scripts/install-deps.sh

# The nested make CMake runs must not inherit ours (-w prints
# "Entering directory" for every target).
SUBMAKE = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL

build: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@$(SUBMAKE) cmake --build $(BUILD_DIR) -j $(JOBS)

# The banner shows the admin connection string to the developer at the
# terminal; a service started otherwise only says where the file is.
run: build
	$(BUILD_DIR)/provd -c $(CONFIG) --show-connection-string

# The whole back-office story on loopback: enroll, mail, register, hub,
# telemetry, where is every device (scripts/demo.sh).
demo: build
	@PROVD_BUILD_DIR=$(BUILD_DIR) scripts/demo.sh

test-normal: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# Unit, plugin, fuzz-replay and end-to-end tests again under
# AddressSanitizer + UBSan (the e2e scripts then drive the sanitized
# provd).  Left to the normal run: slow, interop, browser and postgres
# tests, and plugin_sdk (it builds every plugin again out of tree).
test-asan: deps
	@cmake -S . -B $(ASAN_DIR) -DPROVD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	@$(SUBMAKE) cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) \
	  -L 'unit|plugin|fuzz|e2e' -LE 'slow|interop|browser|postgres' -E '^plugin_sdk$$'

test: test-asan test-normal

# The Debian packages provd_VERSION_ARCH.deb and provd-dev_VERSION_ARCH.deb
# in $(BUILD_DIR) (cmake/ProvdPackage.cmake, docs/operations.md).
package: build
	cd $(BUILD_DIR) && cpack -G DEB

bench: build
	bench/run.sh

# libFuzzer over every parser for FUZZ_SECONDS each (clang).
FUZZ_SECONDS ?= 60
fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DPROVD_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@$(SUBMAKE) cmake --build build-fuzz -j $(JOBS) --target fuzz_all
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
