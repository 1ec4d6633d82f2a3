# moonpool — the two commands a newcomer needs are `make demo` and `make test`.
# Everything is built by CMake into build/ (and build-asan/ for the sanitizer
# build); this Makefile only sequences the steps and installs missing Debian
# packages first (scripts/install-deps.sh says what it installs): `make`,
# `make demo` and `make install` only what building needs (no database
# server, no test framework); `make test` also what the tests need, and
# configures with the optional parts REQUIRED (PostgreSQL provider, cmocka),
# so that a test can never be skipped for a missing package.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
# The tests whose code runs on more than one thread: the SQLite provider
# (WAL checkpoint thread, libuv threadpool), PostgreSQL (threadpool; skips
# without a server), the real env and transport on libuv, mp_call_sync.
TSAN_TESTS ?= test_storage test_storage_pg test_env_uv test_call_sync \
              test_transport_uv test_transport_heartbeat test_host
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=
# What `make test` requires (without them CMake only reports the parts off).
TEST_CMAKE_FLAGS = -DMP_REQUIRE_POSTGRES=ON -DMP_REQUIRE_TESTS=ON
# `make install [PREFIX=/usr/local] [DESTDIR=/staging]`
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps deps-test install build asan test test-release test-asan lint demo bench fuzz valgrind tsan clean help

all: build

help:
	@echo "make            build into $(BUILD)/ (installs missing Debian packages first)"
	@echo "make test       lint + every test, in a normal and an ASan+UBSan build, + make tsan"
	@echo "make demo       run the demo"
	@echo "make install    install into PREFIX (/usr/local), honouring DESTDIR"
	@echo "make bench      run the benchmarks"
	@echo "make fuzz       run each libFuzzer target for FUZZ_SECONDS (clang)"
	@echo "make valgrind   every unit-test binary under valgrind memcheck (minutes)"
	@echo "make tsan       the threaded tests under ThreadSanitizer, in $(TSAN_BUILD)/ (~50 s)"
	@echo "make lint       source lint: determinism (mp_env only), no include cycle between src/ folders, no tests/ in shipped code"

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh build test

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON $(CMAKE_FLAGS)

asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

lint:
	@scripts/lint.sh

# The test targets (re)configure with TEST_CMAKE_FLAGS: a build/ first made
# by `make` without libpq or cmocka gains them here, or fails saying which.
test-release: deps-test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(TEST_CMAKE_FLAGS) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps-test
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON $(TEST_CMAKE_FLAGS) $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

test: lint test-release test-asan tsan
	@echo "moonpool: all tests passed (release, ASan+UBSan and TSan builds)."

valgrind: build
	@scripts/install-deps.sh test valgrind
	@scripts/valgrind.sh $(BUILD)

# ThreadSanitizer: its own build (TSan excludes ASan), only the threaded
# tests. tests/tsan/tsan.supp silences third-party internals only.
# TSan cannot follow a fork after threads when the child starts threads:
# MP_TSAN_SKIP (tests/tsan/skip.c) skips the one test that forks node
# processes (it tests processes, not threads; every other build runs it).
tsan: deps-test
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMP_TSAN=ON $(TEST_CMAKE_FLAGS) $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TESTS)
	cd $(TSAN_BUILD) && \
	  MP_TSAN_SKIP=test_sqlite_concurrent_first_open \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) -R '^unit\.($(shell echo $(TSAN_TESTS) | tr ' ' '|'))$$'
	@echo "moonpool: ThreadSanitizer found no race in the threaded tests."

demo: build
	@scripts/demo.sh $(BUILD)

bench: deps-test build
	@scripts/bench.sh $(BUILD)

fuzz:
	@scripts/install-deps.sh fuzz
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMP_FUZZ=ON -DMP_SANITIZE=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD)
