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

# The demo keeps everything under one directory the unprivileged scanning user can reach.
DEMO_DIR  ?= /var/tmp/scan-gate-demo

LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build tools testdb demo test test-short lint fuzz install clean help

all: build

help:
	@echo "make build    build bin/scan-gate"
	@echo "make tools    install trivy $(TRIVY_VERSION) as $(TRIVY) if it is not there"
	@echo "make demo     (as root) gate two real SIF images with a real trivy"
	@echo "make test     vet, then every test with the race detector and real tools"
	@echo "make lint     gofmt, vet, go mod tidy -diff"
	@echo "make fuzz     run each fuzz target for a short while"
	@echo "make install  install scan-gate and the example policy"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/scan-gate ./cmd/scan-gate

tools:
	@if [ -x "$(TRIVY)" ] && "$(TRIVY)" --version 2>/dev/null | grep -q "Version: $(TRIVY_VERSION)"; \
	then echo "trivy $(TRIVY_VERSION) at $(TRIVY)"; \
	else echo "building trivy $(TRIVY_VERSION) (several minutes the first time)"; \
	  GOEXPERIMENT=jsonv2 GOBIN=$(GOBIN) $(GO) install \
	    -ldflags "-X github.com/aquasecurity/trivy/pkg/version/app.ver=$(TRIVY_VERSION)" \
	    github.com/aquasecurity/trivy/cmd/trivy@v$(TRIVY_VERSION) && \
	  install -D -m 0755 $(GOBIN)/trivy $(TRIVY); fi
	@command -v unsquashfs >/dev/null || { echo "install squashfs-tools"; exit 1; }

# A fixture vulnerability DB with real public Debian 12 advisories.
testdb:
	cd testdata/trivydb && $(GO) run . -o $(DEMO_DIR)/trivy-db

demo: build tools
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
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd testdata/trivydb && $(GO) vet ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt: $$out"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd testdata/trivydb && $(GO) mod tidy -diff

fuzz:
	$(GO) test ./gate/image -run '^$$' -fuzz FuzzOpen -fuzztime 20s
	$(GO) test ./policy -run '^$$' -fuzz FuzzParse -fuzztime 20s
	$(GO) test ./gate/scanner/trivy -run '^$$' -fuzz FuzzParseReport -fuzztime 20s

install: build
	install -D -m 0755 $(BIN)/scan-gate $(DESTDIR)$(PREFIX)/bin/scan-gate
	install -D -m 0644 policy/example.toml $(DESTDIR)/etc/scan-gate/policy.toml.example

clean:
	rm -rf $(BIN)
