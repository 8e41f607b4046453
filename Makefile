# scan-gate: build, test and demo. Run `make help` for the targets.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
GOBIN     := $(shell $(GO) env GOPATH)/bin
BIN       := bin
PREFIX    ?= /usr/local

# The scanner the tests and the demo drive: a real trivy, built from the Go module proxy
# with its version stamped in (a plain `go install` reports "dev").
TRIVY_VERSION := 0.74.0
# /usr/local/bin, not root's GOPATH: the unprivileged scanning user must be able to run it.
TRIVY         ?= /usr/local/bin/trivy
# The second open scanner, grype: its version must be the one testdata/grypedb's go.mod
# requires, which writes the fixture DB (another version would want to rewrite the DB).
GRYPE_VERSION := 0.121.3
GRYPE         ?= /usr/local/bin/grype

# The demo keeps everything under one directory the unprivileged scanning user can reach.
DEMO_DIR  ?= /var/tmp/scan-gate-demo

LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build tools tools-trivy tools-grype testdb demo test test-short lint fuzz install clean help
.PHONY: install-apptainer-wrapper install-oci-hook

all: build

help:
	@echo "make build    build bin/scan-gate"
	@echo "make tools    install trivy $(TRIVY_VERSION) as $(TRIVY) and grype $(GRYPE_VERSION) as $(GRYPE)"
	@echo "make test-scanners  the grype, QScanner and report job tests alone"
	@echo "make demo     (as root) gate two real SIF images with a real trivy"
	@echo "make test     vet, then every test with the race detector and real tools"
	@echo "make lint     gofmt, vet, go mod tidy -diff"
	@echo "make fuzz     run each fuzz target for a short while"
	@echo "make test-prewarm  the prewarm, shared tier, export/import and stats tests alone"
	@echo "make fuzz-smoke  every fuzz target for 10 s from its checked-in corpus"
	@echo "make hardening   the hostile image, fault and privilege tests alone"
	@echo "make bench    (as root) the launch-cost benchmarks: README's Performance table"
	@echo "make install  install scan-gate and the example policy"
	@echo "make install-apptainer-wrapper  also the apptainer/singularity wrapper"
	@echo "make install-oci-hook           also the OCI hook for podman and CRI-O"
	@echo "make slurm    build the SPANK plugin $(SPANK_SO) and $(BIN)/spank-helper"
	@echo "make install-slurm              also the SPANK plugin, its helper, the prolog"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/scan-gate ./cmd/scan-gate

tools: tools-trivy tools-grype

# trivy alone: all that make demo needs.
tools-trivy:
	@if [ -x "$(TRIVY)" ] && "$(TRIVY)" --version 2>/dev/null | grep -q "Version: $(TRIVY_VERSION)"; \
	then echo "trivy $(TRIVY_VERSION) at $(TRIVY)"; \
	else echo "building trivy $(TRIVY_VERSION) (several minutes the first time)"; \
	  GOEXPERIMENT=jsonv2 GOBIN=$(GOBIN) $(GO) install \
	    -ldflags "-X github.com/aquasecurity/trivy/pkg/version/app.ver=$(TRIVY_VERSION)" \
	    github.com/aquasecurity/trivy/cmd/trivy@v$(TRIVY_VERSION) && \
	  install -D -m 0755 $(GOBIN)/trivy $(TRIVY); fi
	@command -v unsquashfs >/dev/null || { echo "install squashfs-tools"; exit 1; }

tools-grype:
	@if [ -x "$(GRYPE)" ] && "$(GRYPE)" version 2>/dev/null | grep -Eq "^Version: +$(GRYPE_VERSION)$$"; \
	then echo "grype $(GRYPE_VERSION) at $(GRYPE)"; \
	else echo "building grype $(GRYPE_VERSION) (a few minutes the first time)"; \
	  GOBIN=$(GOBIN) $(GO) install -ldflags "-X main.version=$(GRYPE_VERSION)" \
	    github.com/anchore/grype/cmd/grype@v$(GRYPE_VERSION) && \
	  install -D -m 0755 $(GOBIN)/grype $(GRYPE); fi

# A fixture vulnerability DB with real public Debian 12 advisories.
testdb:
	cd testdata/trivydb && $(GO) run . -o $(DEMO_DIR)/trivy-db

demo: build tools-trivy
	@test "$$(id -u)" = 0 || { echo "make demo runs as root, as the gate does at launch"; exit 1; }
	mkdir -p $(DEMO_DIR) && chmod 755 $(DEMO_DIR)
	cd testdata/trivydb && $(GO) run . -o $(DEMO_DIR)/trivy-db
	$(GO) run ./testdata/mkimage -o $(DEMO_DIR)/images
	sed -e 's|@DEMO_DIR@|$(DEMO_DIR)|g' -e 's|@TRIVY@|$(TRIVY)|g' \
	  testdata/demo-policy.toml > $(DEMO_DIR)/policy.toml
	rm -rf $(DEMO_DIR)/cache $(DEMO_DIR)/audit.jsonl
	@echo; echo "== 1. a vulnerable image: blocked"
	-$(BIN)/scan-gate check --policy $(DEMO_DIR)/policy.toml $(DEMO_DIR)/images/vulnerable.sif; \
	  echo "exit status $$?"
	@echo; echo "== 2. the same packages, patched: allowed"
	$(BIN)/scan-gate check --policy $(DEMO_DIR)/policy.toml $(DEMO_DIR)/images/patched.sif; \
	  echo "exit status $$?"
	@echo; echo "== 3. the vulnerable image again: decided from the cache"
	-$(BIN)/scan-gate check --policy $(DEMO_DIR)/policy.toml $(DEMO_DIR)/images/vulnerable.sif; \
	  echo "exit status $$?"
	@echo; echo "== the audit log ($(DEMO_DIR)/audit.jsonl)"
	@cat $(DEMO_DIR)/audit.jsonl

test:
	cd testdata/trivydb && $(GO) mod download
	cd testdata/grypedb && $(GO) mod download
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd testdata/trivydb && $(GO) vet ./...
	cd testdata/grypedb && $(GO) vet ./...

# The grype, QScanner (against its double) and `scan` tests alone, with the real scanners.
.PHONY: test-scanners
test-scanners:
	$(GO) test -race -count=1 ./gate/finding ./gate/report ./gate/scanner/... ./policy
	$(GO) test -count=1 ./cmd/scan-gate -run 'TestScripts/(grype|qscanner)_'

# The prewarm tests alone: units, the scripts, and the array job in a real one-node Slurm
# (root, slurm-wlm, munge, libslurm-dev; skipped without them).
.PHONY: test-prewarm
test-prewarm:
	$(GO) test -race -count=1 ./gate/prewarm ./gate/stats ./gate/extract ./cache
	$(GO) test -count=1 ./cmd/scan-gate \
	  -run 'TestScripts/(prewarm|prewarm_resume|prewarm_targets|shared_tier|cache_export|stats)$$'
	$(GO) test -count=1 ./contrib/slurm/slurmtest -run TestPrewarmArray

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt: $$out"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd testdata/trivydb && $(GO) mod tidy -diff
	cd testdata/grypedb && $(GO) mod tidy -diff

fuzz:
	$(GO) test ./gate/image -run '^$$' -fuzz FuzzOpen -fuzztime 20s
	$(GO) test ./policy -run '^$$' -fuzz FuzzParse -fuzztime 20s
	$(GO) test ./gate/scanner/trivy -run '^$$' -fuzz FuzzParseReport -fuzztime 20s
	$(GO) test ./gate/scanner/qscanner -run '^$$' -fuzz FuzzParseSARIF -fuzztime 20s

install: build
	install -D -m 0755 $(BIN)/scan-gate $(DESTDIR)$(PREFIX)/bin/scan-gate
	install -D -m 0644 policy/example.toml $(DESTDIR)/etc/scan-gate/policy.toml.example

# The apptainer/singularity wrapper (contrib/apptainer/README.md): a convenience, not
# enforcement. $(PREFIX)/bin must come before the real runtime's directory in PATH.
install-apptainer-wrapper: install
	install -D -m 0755 contrib/apptainer/apptainer-wrapper.sh \
	  $(DESTDIR)$(PREFIX)/libexec/scan-gate/apptainer-wrapper
	ln -sf ../libexec/scan-gate/apptainer-wrapper $(DESTDIR)$(PREFIX)/bin/apptainer
	ln -sf ../libexec/scan-gate/apptainer-wrapper $(DESTDIR)$(PREFIX)/bin/singularity

# The OCI hook for podman and CRI-O, which read hook directories (contrib/oci/README.md).
install-oci-hook: install
	install -D -m 0644 contrib/oci/scan-gate-hook.json \
	  $(DESTDIR)/usr/share/containers/oci/hooks.d/scan-gate.json

# The Slurm launch points (contrib/slurm/README.md): the SPANK plugin, built against
# slurm/spank.h (Debian: libslurm-dev), its helper, and the PrologSlurmctld script.
CC           ?= cc
SPANK_CFLAGS ?= -O2 -g -Wall -Wextra -Werror -fPIC
SPANK_SO     ?= $(BIN)/scan_gate.so
SPANK_SRC    := contrib/slurm/plugin.c contrib/slurm/config.c contrib/slurm/helper.c
.PHONY: slurm install-slurm

slurm: $(SPANK_SO)
	$(GO) build -o $(BIN)/spank-helper ./cmd/spank-helper

$(SPANK_SO): $(SPANK_SRC) contrib/slurm/scan_gate.h
	@mkdir -p $(dir $@)
	$(CC) -shared $(SPANK_CFLAGS) -o $@ $(SPANK_SRC)

install-slurm: install slurm
	install -D -m 0755 $(SPANK_SO) $(DESTDIR)$(PREFIX)/lib/scan-gate/scan_gate.so
	install -D -m 0755 $(BIN)/spank-helper \
	  $(DESTDIR)$(PREFIX)/libexec/scan-gate/spank-helper
	install -D -m 0755 contrib/slurm/prolog-slurmctld \
	  $(DESTDIR)$(PREFIX)/libexec/scan-gate/prolog-slurmctld

clean:
	rm -rf $(BIN)

# The hardening suite alone (also part of make test): the hostile image scripts, the fault
# and privilege tests, and the unit tests of what they found. Root for the parts that
# mount a small tmpfs, chown, or run as another user.
HARDENING_TESTS := ^(TestKillAtRandomPoints|TestLockFileRemovedDuringScan|TestCacheRemoved.*|$\
TestDiskFullDuringExtraction|TestMisbehavingScanner|TestCacheWritableByOthersRefused|$\
TestPoisonedCacheIgnored|TestScratchIsPrivate|TestKilledCheckIsRecovered|$\
TestTerminatedCheckCleansUp|TestUnprivilegedUser|TestExtractRefuses.*|TestExtractOverlay|$\
TestExtractHostileTree|TestHitReadsNoImageBytes|TestUnscannableKnownToStatIndex|$\
TestScanRefusesBadRuns|TestCheckBlindSpots|TestFindPackageDB|TestUntrustedEntryIsMiss|$\
TestOpenRefuses|TestOpenRefusals)$$
.PHONY: hardening
hardening:
	$(GO) test -race -count=1 ./cmd/scan-gate -run '^TestScripts$$/^(hostile_|qscanner_token$$)'
	$(GO) test -race -count=1 ./cmd/scan-gate ./gate/... ./cache -run '$(HARDENING_TESTS)'

# Every fuzz target of the module, each for FUZZ_SMOKE_TIME from its checked-in corpus.
FUZZ_SMOKE_TIME ?= 10s
.PHONY: fuzz-smoke
fuzz-smoke:
	.ci/fuzz-smoke $(FUZZ_SMOKE_TIME)

# (root) The launch-cost benchmarks: the README's "Performance" table (bench/run).
.PHONY: bench
bench:
	bench/run
