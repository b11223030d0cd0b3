# CityPass: `make demo` and `make test` do all set-up by themselves.
# Set-up is idempotent: stamps record what is installed, so a second run does nothing.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SOLC_VERSION := 0.8.37
SOLCX_DIR := $(CURDIR)/.solcx
SOLC := $(SOLCX_DIR)/solc-v$(SOLC_VERSION)

# Brownie finds Anvil as `anvil` on PATH and solc through py-solc-x's binary folder.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export SOLCX_BINARY_PATH := $(SOLCX_DIR)
export MPLBACKEND := Agg

.PHONY: setup compile artifacts test fuzz faults-long demo bench clean distclean

setup: $(VENV)/.stamp node_modules/.stamp $(SOLC) $(VENV)/bin/anvil $(VENV)/.citypass.stamp

$(VENV)/.stamp: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip==24.3.1
	BROWNIE_NOCOMPILE=1 $(PIP) install -q --no-binary eth-brownie -r requirements.txt
	touch $@

# The package (with its runtime deps) installed in editable mode into the dev venv.
$(VENV)/.citypass.stamp: $(VENV)/.stamp pyproject.toml
	$(PIP) install -q -e '.[reports]'
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# py-solc-x looks for solc-v<version> in SOLCX_BINARY_PATH; the adapter stands in for it.
$(SOLC): toolchain/solc-adapter.js | node_modules/.stamp
	mkdir -p $(SOLCX_DIR)
	ln -sf $(CURDIR)/toolchain/solc-adapter.js $@
	chmod +x toolchain/solc-adapter.js

# The native Anvil binary from the npm package, without the node wrapper in between.
$(VENV)/bin/anvil: | node_modules/.stamp $(VENV)/.stamp
	ln -sf "$$(node -e "console.log(require('path').dirname(require.resolve('@foundry-rs/anvil-linux-amd64/package.json')))" 2>/dev/null || echo $(CURDIR)/node_modules/@foundry-rs/anvil)/bin/anvil" $@
	$@ --version > /dev/null

compile: setup
	$(VENV)/bin/brownie compile

# The package ships the contract's ABI and bytecode (tests/test_artifacts.py checks they
# match a fresh compile): run this after changing contracts/.
artifacts: compile
	$(PY) -m citypass.contract --sync-artifacts

test: setup lint chromium
	$(VENV)/bin/brownie test --network anvil $(PYTEST_ARGS)
	$(VENV)/bin/brownie test --network ganache-cli -m "ganache and not anvil_only"
	$(MAKE) forge

# Static analysis: Slither on contracts/ and its ERC-1155 conformance check of CityPass
# (toolchain/lint.py says what fails), in its own venv (see its requirements file for why).
# lint.py compiles only when the contracts changed.
SLITHER_VENV := .venv-slither
.PHONY: lint clean-slither

$(SLITHER_VENV)/.stamp: toolchain/requirements-slither.txt
	test -x $(SLITHER_VENV)/bin/python || python3 -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/pip install -q --upgrade pip==24.3.1
	$(SLITHER_VENV)/bin/pip install -q -r toolchain/requirements-slither.txt
	touch $@

lint: setup $(SLITHER_VENV)/.stamp
	$(SLITHER_VENV)/bin/python toolchain/lint.py $(LINT_ARGS)

distclean: clean-slither
clean-slither:
	rm -rf $(SLITHER_VENV)

# The long stateful fuzz: tests/test_stateful.py with >= 10,000 random steps in total (it fails
# if fewer ran), every invariant checked after each, then faults-long; `make test` runs short versions.
FUZZ_EXAMPLES ?= 300
FUZZ_STEPS ?= 50
FUZZ_NETWORK ?= anvil
fuzz: setup
	set -o pipefail; CITYPASS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CITYPASS_FUZZ_STEPS=$(FUZZ_STEPS) CITYPASS_FUZZ_MIN_STEPS=10000 \
		$(VENV)/bin/brownie test tests/test_stateful.py --network $(FUZZ_NETWORK) -s $(PYTEST_ARGS) \
		| grep --line-buffered -v -E 'Transaction sent|Gas price|confirmed|^\s*$$'
	$(MAKE) faults-long
	$(MAKE) networks-long
	$(MAKE) forge FORGE_DEPTH=500 FORGE_PAUSE_PROVIDERS=10000

# The CLI flow at full size on Anvil --block-time 2 and on Hardhat's node (40 residents in 8
# batches, 24 pipelined redemptions); `make test` runs both with 2 residents (~1 minute together).
.PHONY: networks-long
networks-long: setup
	CITYPASS_LONG=1 $(VENV)/bin/brownie test tests/test_block_time.py tests/test_cli_hardhat.py tests/web/test_till_block_time.py tests/web/long_till_block_time.py --network anvil -s $(PYTEST_ARGS)

# tests/test_faults.py at full size: 5,000-row issuances killed at 12 points, node restarts;
# tests/test_durable.py long: 52 kills (random and during saves), 40 restarts, 40 random kills of
# a client process (2 of 3 together with the node).
faults-long: setup
	CITYPASS_LONG=1 $(VENV)/bin/brownie test tests/test_faults.py tests/test_durable.py --network anvil -s $(PYTEST_ARGS)

# Forge's invariant suite (forge/, foundry.toml): after every call of every run, conservation
# per budget, used nonces, the refund bound, the resident bound and the pause are checked.
# `make test` runs 256 runs x depth 50 and the pause-gas test with 1,000 providers; `make fuzz`
# depth 500 and 10,000 providers. Build and cache in build/forge: ~40 s of CPU in two compiler
# runs side by side (CityPass once, optimized; the fuzz handler unoptimized: foundry.toml says
# why), redone only when contracts/ or forge/ change; the short campaign then takes ~25 s.
FORGE := $(VENV)/bin/forge
FORGE_RUNS ?= 256
FORGE_DEPTH ?= 50
FORGE_PAUSE_PROVIDERS ?= 1000
.PHONY: forge
forge: setup $(FORGE)
	FOUNDRY_INVARIANT_RUNS=$(FORGE_RUNS) FOUNDRY_INVARIANT_DEPTH=$(FORGE_DEPTH) CITYPASS_PAUSE_PROVIDERS=$(FORGE_PAUSE_PROVIDERS) \
		$(FORGE) test $(FORGE_ARGS)

# The native forge binary from the npm package, as for Anvil.
$(FORGE): | node_modules/.stamp $(VENV)/.stamp
	ln -sf "$$(node -e "console.log(require('path').dirname(require.resolve('@foundry-rs/forge-linux-amd64/package.json')))" 2>/dev/null || echo $(CURDIR)/node_modules/@foundry-rs/forge)/bin/forge" $@
	$@ --version > /dev/null

# The whole lifecycle on a fresh embedded chain; writes report/.
demo: setup compile
	$(PY) -m citypass.demo $(DEMO_ARGS)

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

clean:
	-$(PY) -c "from citypass import node; node.node_stop('.citypass-demo'); node.node_stop('.citypass')" 2>/dev/null
	rm -rf build .citypass .citypass-demo report .pytest_cache

distclean: clean
	rm -rf $(VENV) node_modules $(SOLCX_DIR)

# The browser pages: toolchain/build-web.mjs bundles web/src into citypass/web/static/ (committed,
# so `pip install` ships it; tests/test_bundle.py checks it equals a fresh build).
.PHONY: web chromium test-web bench-till
web: node_modules/.stamp
	node toolchain/build-web.mjs

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# The till's figures in a real browser: scan to verdict, pay to paid beside the CLI, page weight.
bench-till: setup chromium
	$(PY) -m bench.till $(BENCH_ARGS)

# The pass app's figures in a real phone-sized browser: sign + draw the pass QR and the PIN unlock at
# CPU 4x, the app's weight, the pass QR's version and length for 1, 3 and 5 budgets (bench/pass.py).
.PHONY: bench-pass
bench-pass: setup chromium
	$(PY) -m bench.pass $(BENCH_ARGS)

# Only the till's browser tests (also part of `make test`), on their own embedded chain.
test-web: setup chromium
	$(PY) -m pytest tests/web tests/test_bundle.py -p no:pytest-brownie --confcutdir=tests/web $(PYTEST_ARGS)
