# vc-cri: every pod its own VM.
#   make run    install host packages, build guest image and daemon, start vc-cri
#   make test   unit, integration (root, QEMU) and conformance tests

SHELL       := /bin/bash
OUT         := $(CURDIR)/_output
BIN         := $(OUT)/bin
TOOLS       := $(OUT)/tools
GUEST       := $(OUT)/guest
GO          ?= go
TAGS        := containers_image_openpgp exclude_graphdriver_btrfs
GOFLAGS_ALL := -tags "$(TAGS)"
GUEST_DIR   ?= /var/lib/vc-cri/guest

export PATH := $(TOOLS):$(PATH)

.PHONY: all build deps guest proto test test-unit test-integration run install bench clean

all: build

deps:
	./hack/install-deps.sh

build: $(BIN)/vc-cri $(BIN)/vc-agent

# Phony inputs: go's own build cache decides what is stale.
$(BIN)/vc-cri: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_ALL) -o $@ ./cmd/vc-cri

# vc-agent is PID 1 of a guest that has no libc: a static cgo build, as
# runc's nsenter is C.
$(BIN)/vc-agent: FORCE
	CGO_ENABLED=1 $(GO) build -tags "netgo osusergo seccomp" -ldflags "-extldflags -static -s -w" -o $@ ./cmd/vc-agent

guest: $(BIN)/vc-agent
	./hack/guest/build.sh $(BIN)/vc-agent $(GUEST)

proto:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		pkg/agent/protocol/agent.proto

test: deps guest test-unit test-integration

test-unit:
	$(GO) vet $(GOFLAGS_ALL) ./...
	$(GO) test $(GOFLAGS_ALL) -short ./...

# Real QEMU (TCG) VMs with the guest image built by `make guest`.
test-integration: guest
	VC_GUEST_DIR=$(GUEST) $(GO) test $(GOFLAGS_ALL) -count=1 -timeout 20m ./...

install: build guest
	install -d $(GUEST_DIR)
	install -m 0644 $(GUEST)/vmlinux $(GUEST)/vmlinuz $(GUEST)/initramfs.cpio $(GUEST_DIR)/

run: deps install
	$(BIN)/vc-cri

bench: guest
	VC_GUEST_DIR=$(GUEST) $(GO) test $(GOFLAGS_ALL) -run '^$$' -bench . -benchtime 5x ./pkg/...

clean:
	rm -rf $(OUT)

FORCE:
