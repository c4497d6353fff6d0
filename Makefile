# keyledger: `make run` starts it against a local Postgres, `make test` tests it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export KEYLEDGER_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/keyledger?sslmode=disable
export KEYLEDGER_TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable
# make run keeps a development master key here (created on first run, mode 0600).
DEV_MASTER_KEY_FILE ?= $(CURDIR)/.keyledger/master.key

# The version `keyledger version` prints; the image gets it as the VERSION build arg.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_BUILD := go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

.PHONY: help run build test test-deps test-short generate config-docs check-generated lint fmt bench bench-scan fuzz loadtest screenshot clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build bin/keyledger
	$(GO_BUILD) -o bin/keyledger ./cmd/keyledger

run: build ## create the database, a dev master key and an admin if missing, then serve on 127.0.0.1:8080
	@if [ -z "$$KEYLEDGER_MASTER_KEY" ] && [ -z "$$KEYLEDGER_MASTER_KEY_FILE" ]; then export KEYLEDGER_MASTER_KEY_FILE=$(DEV_MASTER_KEY_FILE); fi; \
	./bin/keyledger bootstrap && exec ./bin/keyledger serve

generate: ## regenerate templ code and docs/configuration.md's variables table
	go tool templ generate
	$(MAKE) --no-print-directory config-docs

config-docs: ## regenerate the variables table in docs/configuration.md from cmd/keyledger/config_vars.go
	go test -count=1 -run '^TestConfigDocsTable$$' ./cmd/keyledger/ -update-docs

check-generated: ## fail when committed *_templ.go files are stale
	@go tool templ generate >/dev/null 2>&1
	@if [ -n "$$(git status --porcelain -- '*_templ.go')" ]; then \
		echo "generated templ code is stale; run 'make generate' and commit:"; git status --porcelain -- '*_templ.go'; exit 1; fi

# npm packages some tests run for real (an OpenID Connect provider, an
# OpenAPI validator, axe-core): each under web/testdata/*/ with a lock file,
# installed exactly as locked when missing.
test-deps: ## install the npm packages the tests use (npm ci, as locked)
	@if [ "$$KEYLEDGER_SKIP_NODE" = 1 ]; then exit 0; fi; \
	for lock in $$(ls web/testdata/*/package-lock.json 2>/dev/null); do \
		dir=$$(dirname $$lock); \
		if [ ! -d $$dir/node_modules ]; then echo "npm ci in $$dir"; npm ci --prefix $$dir --no-audit --no-fund >/dev/null || exit 1; fi; \
	done

test: check-generated test-deps ## run every test against the Postgres at KEYLEDGER_TEST_DATABASE_URL
	go test -count=1 -timeout 20m ./...

test-short: ## unit tests only (no browser)
	go test -count=1 -short ./...

# golangci-lint is pinned here, not in go.mod: as a go.mod tool its
# requirements would join the module graph and upgrade modules the app
# itself links (go get -tool @v2.15.0 moved mattn/go-colorable in the
# keyledger binary, and otelhttp, yaml/v4 ... in the tests). `go install
# pkg@version` builds it from its own go.mod instead, once, into bin/; the
# versioned file name rebuilds it when the pin changes.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := bin/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin/.golangci-lint go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv bin/.golangci-lint/golangci-lint $@ && rmdir bin/.golangci-lint

lint: $(GOLANGCI_LINT) ## gofmt, go vet, staticcheck, golangci-lint (.golangci.yml)
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go tool staticcheck ./...
	$(GOLANGCI_LINT) run ./...

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

bench: ## run the benchmarks
	go test -run '^$$' -bench . -benchmem ./crypto/ ./store/

bench-scan: ## keyledger scan over a 50,000-file, 500 MB git tree against a real server (wall time, peak RSS; fails at 30 s)
	go test -run '^$$' -bench BenchmarkScanTree -benchtime 1x -timeout 20m -v ./cmd/keyledger/

fuzz: ## run each fuzz target briefly
	go test -run '^$$' -fuzz FuzzOpen -fuzztime 15s ./crypto/
	go test -run '^$$' -fuzz FuzzVerifyPassword -fuzztime 15s ./crypto/
	go test -run '^$$' -fuzz FuzzFormatAssignment -fuzztime 15s .
	go test -run '^$$' -fuzz FuzzKeyForm -fuzztime 15s .

# Every fuzz target in the repository (found by name, so a new one is
# included), each for FUZZTIME; CI runs this after make test.
FUZZTIME ?= 10s
.PHONY: fuzz-ci
fuzz-ci: ## run every fuzz target for FUZZTIME (10s) each
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz $$target in $$dir/ for $(FUZZTIME)"; \
			go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$dir/; \
		done; \
	done

# LOADTEST_FLAGS passes options through, e.g. make loadtest LOADTEST_FLAGS='-duration 3s -clients 1,8'.
LOADTEST_FLAGS ?=
loadtest: ## seed a fresh keyledger_load database (10,000 keys), load a real server at 1, 8, 32 clients, print the table
	go run ./cmd/keyledger-load $(LOADTEST_FLAGS)

screenshot: ## regenerate docs/screenshots/ (main pages, desktop and phone; the README shows keys-desktop.png) with headless Chromium
	KEYLEDGER_SCREENSHOTS=$(CURDIR)/docs/screenshots go test -count=1 -run TestBrowserScreenshot ./web/

clean: ## remove build output
	rm -rf bin
