# Entry points for a fresh Debian 12 machine. Every target runs scripts/setup first (quiet when nothing is
# missing). Builds go to build/<preset>; `make test` uses the release preset with warnings as errors.
JOBS ?= $(shell nproc)
PRESET ?= release
BUILD := build/$(PRESET)

.PHONY: setup build demo test test-full test-asan bench bench-e2e bench-cluster fuzz fuzz-smoke train-tiny clean

setup:
	@scripts/setup

build: setup
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo $(BUILD)

test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j 1 -LE full

# The slow full-size checks (SDXL base and refiner, SD 2.1 768-v, DiT, LoRA, ControlNet and IP-Adapter at their
# real sizes, random weights): up to 19 GB of memory,
# 21 GB of temporary disk and about 50 minutes on 2 cores. Run before resolving a model issue.
test-full: build
	@ctest --test-dir $(BUILD) --output-on-failure -j 1 -L full --timeout 7200

# Unit, kernel and fuzz-corpus tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: setup
	@cmake --preset asan >/dev/null
	@cmake --build build/asan -j $(JOBS)
	@ctest --test-dir build/asan --output-on-failure -j 1 -L 'unit|kernels|fuzz|server'

bench: build
	@mkdir -p build/bench
	@$(BUILD)/tools/bench/easel_bench_kernels --benchmark_out=build/bench/kernels.json --benchmark_out_format=json

# End to end on a random-weight SD 1.5 (scripts/bench-e2e): PEER=/path/to/sd-cli adds stable-diffusion.cpp, interleaved;
# TORCH=/path/to/python (with torch and diffusers) adds PyTorch's UNet step and VAE decode; BATCH=4 a batch sampled together.
bench-e2e: build
	@scripts/bench-e2e $(BUILD)

# easel serve on PostgreSQL with 1, 2 and 3 `easel worker` processes against one machine's SQLite server: jobs/s and
# p50/p99 latency (tools/bench/cluster; it starts its own PostgreSQL server). The table in docs/server.md.
bench-cluster: build
	@$(BUILD)/tools/bench/easel_bench_cluster

# libFuzzer targets under ASan+UBSan. FUZZ_SECONDS per target (default 60).
FUZZ_SECONDS ?= 60
fuzz: setup
	@cmake --preset fuzz >/dev/null
	@cmake --build build/fuzz -j $(JOBS)
	@scripts/fuzz build/fuzz $(FUZZ_SECONDS)

# What CI runs: each fuzz target for a short time.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

train-tiny:
	@scripts/setup --train
	@/usr/bin/python3 tools/train/train_tiny.py

clean:
	rm -rf build
