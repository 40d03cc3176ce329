# pytracee: `make run` traces with the default events; `make test` runs the suite.
# Both do all set-up first (apt packages, virtualenv, BPF object); every step
# is skipped when already done.

SHELL := /bin/bash
PY ?= python3
VENV := .venv
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool docker.io busybox-static debootstrap iproute2 iputils-ping tshark
BPF_OBJ := src/pytracee/bpf/pytracee.bpf.o
BPF_SRC := $(wildcard bpf/*.bpf.c bpf/common/*.h)
ARGS ?=

.PHONY: all setup deps venv bpf run test unit bench bench-rss bench-detect clean

all: setup

setup: deps venv bpf

# apt packages: only when one is missing, so a set-up machine does no network I/O.
# The stamp depends on this Makefile so that a package added to APT_PACKAGES is
# noticed; re-checking is dpkg only (no network) when everything is installed.
deps: .setup-apt
.setup-apt: Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

bpf: $(BPF_OBJ)
bpf/vmlinux.h: | .setup-apt
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): $(BPF_SRC) bpf/vmlinux.h | .setup-apt
	@mkdir -p $(dir $@)
	clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -Ibpf -c bpf/pytracee.bpf.c -o $@

run: setup
	$(VENV)/bin/pytracee $(ARGS)

test: setup
	$(VENV)/bin/pytest -q

unit: venv
	$(VENV)/bin/pytest -q tests/unit

bench: setup
	$(VENV)/bin/python bench/syscall_storm.py

# pytracee's RSS with 10 000 live processes in its process tree (needs root and gcc)
bench-rss: setup
	$(VENV)/bin/python bench/proctree_rss.py

# signature engine: events/s with the built-ins, Rego/CEL evaluations/s, live detection
# latency at 10 k events/s (needs root and gcc)
bench-detect: setup
	$(VENV)/bin/python bench/signature_engine.py

# kernel-side cost per BPF program (bpf_stats); AGAINST=REV compares with a git revision
bench-bpf: setup
	$(VENV)/bin/python bench/bpf_cost.py $(if $(AGAINST),--against $(AGAINST))

clean:
	rm -rf $(VENV) $(BPF_OBJ) bpf/vmlinux.h .setup-apt
