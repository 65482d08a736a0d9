# The two commands of the README:
#   make run    installs what is missing, builds, starts a single-node server
#   make test   installs what is missing, builds, runs every test (also under ASan+UBSan, TSan
#               and with clang); warnings are errors there, never in a plain `make`
BUILD       ?= build
ASAN_BUILD  ?= build-asan
TSAN_BUILD  ?= build-tsan
CLANG_BUILD ?= build-clang
# Warnings are errors in `make test` (every build it makes), never in a plain `make` / `make run`.
WERROR     ?= OFF
CONFIG     ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build build-asan build-tsan build-clang werror run test test-unit chaos-smoke chaos test-asan test-asan-integration test-tsan bench format clean

all: build

deps:
	@bash scripts/deps.sh

# Release (-O3): what packagers and most users build.
$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DMN_WERROR=$(WERROR)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMN_SANITIZE=ON -DMN_INTEGRATION=OFF -DMN_WERROR=$(WERROR)

build-asan: $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)

$(TSAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMN_TSAN=ON -DMN_INTEGRATION=OFF -DMN_WERROR=$(WERROR)

# ThreadSanitizer: the concurrent index and engine tests only (searches run beside inserts).
TSAN_TESTS = test_hnsw test_hnsw_concurrent test_engine test_engine_hnsw test_engine_events test_metrics \
             test_engine_dedup
build-tsan: $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target $(TSAN_TESTS)

TSAN_REGEX = unit\.($(subst $(eval) ,|,$(strip $(TSAN_TESTS))))$$
test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" ctest --output-on-failure -R '$(TSAN_REGEX)'

# clang (Debian's clang), Debug: every target, so both compilers stay warning-free; its unit
# tests run too.
$(CLANG_BUILD)/CMakeCache.txt:
	CC=clang CXX=clang++ cmake -S . -B $(CLANG_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMN_INTEGRATION=OFF -DMN_WERROR=$(WERROR)

build-clang: $(CLANG_BUILD)/CMakeCache.txt
	cmake --build $(CLANG_BUILD) -j$(JOBS)

# Turns -Werror on in every build directory `make test` uses (they may have been configured
# without it by a plain `make`).
werror:
	@for d in $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(CLANG_BUILD); do \
	  if [ -f $$d/CMakeCache.txt ]; then cmake -S . -B $$d -DMN_WERROR=ON > /dev/null; fi; done

run: deps build
	./$(BUILD)/mnemo serve $(if $(CONFIG),--config $(CONFIG),)

# The API suites that drive the server's own threads hardest, run again against the ASan+UBSan
# server binary (the sanitizers abort the server, so a finding fails the suite). Two groups run
# side by side (the CI budget: the suites mostly wait on their servers), each suite in one:
# the cluster suites (several servers each) and the single-server ones.
ASAN_INTEGRATION_CLUSTER = test_cluster_spaces test_cluster_route test_cluster_catalog \
                   test_cluster_repl test_cluster_gossip test_cluster_recall test_cluster_snapshot \
                   test_cluster_recreate test_embedding
ASAN_INTEGRATION_SINGLE = test_api_memories test_api_recall test_api_index test_api_cognitive \
                   test_api_fuzz test_events test_mcp test_auth test_tls test_limits test_grpc \
                   test_http_bounds test_body_memory test_auth_matrix test_corruption \
                   test_embedding_model test_recall_time test_text_language test_filter test_dedup \
                   test_api_versions test_grpc_versions test_mcp_versions \
                   test_api_forget_where test_grpc_forget_where test_mcp_forget_where \
                   test_recall_multi test_admin_cli
# (test_cluster_five, _https, _peer, _drain and the rest run in the Release ctest only: the CI
# budget; their TLS and peer-bus code runs under ASan in the unit tests test_peer_tls, test_peer)
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ASAN_PYTEST = $(ASAN_ENV) MNEMO_BIN=$(CURDIR)/$(ASAN_BUILD)/mnemo PYTHONPATH=$(CURDIR)/clients/python \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider

# the cluster group's output follows the other's (kept in $(ASAN_BUILD)/asan-cluster.log)
test-asan-integration: build-asan
	@rc=0; \
	( $(ASAN_PYTEST) $(addprefix tests/integration/,$(addsuffix .py,$(ASAN_INTEGRATION_CLUSTER))) \
	    > $(ASAN_BUILD)/asan-cluster.log 2>&1; echo $$? > $(ASAN_BUILD)/asan-cluster.rc ) & \
	$(ASAN_PYTEST) $(addprefix tests/integration/,$(addsuffix .py,$(ASAN_INTEGRATION_SINGLE))) || rc=1; \
	wait; echo "--- the cluster suites under ASan+UBSan:"; cat $(ASAN_BUILD)/asan-cluster.log; \
	[ "$$(cat $(ASAN_BUILD)/asan-cluster.rc)" = 0 ] || rc=1; exit $$rc

# Every test: unit + integration on the release build, the unit tests and the main API suites
# under ASan+UBSan, the concurrency tests under TSan, the unit tests of the clang build.
# Warnings are errors in all four builds. (The TSan tests once ran beside the ASan API suites
# to save 2 minutes; the load made a cluster suite see an election mid-test: kept apart.)
test: export WERROR = ON
test: deps werror build build-asan build-tsan build-clang
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cd $(CLANG_BUILD) && ctest --output-on-failure -j$(JOBS) -L unit
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory test-asan-integration
	$(MAKE) --no-print-directory test-tsan

# The chaos harness's fault tests (tests/cluster/README.md): three mnemo processes in network
# namespaces of their own; needs root, nftables and iptables (the delay without sch_netem).
# `make test` runs the same file as the ctest cluster.test_faults.
chaos-smoke: deps build
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/cluster/test_faults.py --bin $(CURDIR)/$(BUILD)/mnemo

# Long chaos runs (tests/cluster/README.md): SEEDS seeds of DURATION seconds each on NODES nodes,
# a table of faults, ops, violations, convergence and staleness at the end; runs and their
# histories under CHAOS_OUT. Needs root and nftables. A short fixed-seed run is in `make test`
# (ctest label `cluster`).
SEEDS ?= 20
DURATION ?= 600
NODES ?= 3
FIRST_SEED ?= 1
CHAOS_JOBS ?= 1
CHAOS_OUT ?= $(BUILD)/chaos
# the production shape: three copies of each space, every copy judged; descriptors traced
CHAOS_ARGS ?= --replication-factor 3 --holders all --fdtrace $(CURDIR)/$(BUILD)/tests/libmn_fdtrace.so
chaos: deps build
	/usr/bin/python3 tests/cluster/chaos_many.py --bin $(CURDIR)/$(BUILD)/mnemo --seeds $(SEEDS) \
	  --first-seed $(FIRST_SEED) --duration $(DURATION) --nodes $(NODES) --jobs $(CHAOS_JOBS) \
	  --out $(CHAOS_OUT) \
	  -- $(CHAOS_ARGS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

bench: build
	/usr/bin/python3 bench/run_bench.py --bin $(BUILD)/mnemo --inproc $(BUILD)/bench/mn_bench_engine

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(CLANG_BUILD)
