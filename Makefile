# vc-cri: every pod its own VM.
#   make run    install host packages, build guest image and daemon, start vc-cri
#   make test   unit, integration (root, QEMU), end-to-end and conformance tests

SHELL       := /bin/bash
OUT         := $(CURDIR)/_output
BIN         := $(OUT)/bin
TOOLS       := $(OUT)/tools
GUEST       := $(OUT)/guest
GO          ?= go
# No gpgme for image signatures; no btrfs headers for the store.
TAGS        := containers_image_openpgp exclude_graphdriver_btrfs
GOTAGS      := -tags "$(TAGS)"
PREFIX      ?= /usr/local
GUEST_DIR   ?= /var/lib/vc-cri/guest
# The guest kernel: lean (built once from linux-source-6.1 with
# hack/guest/kernel.config, cached in /var/cache/vc-cri/guest-kernel) or
# debian (the generic linux-image-amd64 and its modules).
GUEST_KERNEL ?= lean
SYSTEMD_DIR ?= /etc/systemd/system

export PATH := $(TOOLS):$(PATH)
export VC_GUEST_DIR := $(GUEST)

.PHONY: all build deps guest proto install run test lint test-unit test-go e2e kubelet-e2e critest bench soak bench-image \
	testregistry-start testregistry-stop clean

all: build

deps:
	./hack/install-deps.sh

build: $(BIN)/vc-cri $(BIN)/vc-agent $(BIN)/vc-pause

# Phony inputs: go's own build cache decides what is stale.
$(BIN)/vc-cri: FORCE
	CGO_ENABLED=0 $(GO) build $(GOTAGS) -o $@ ./cmd/vc-cri

# vc-pause is the infra process of the runc handler's pods, run inside
# their containers: static.
$(BIN)/vc-pause: FORCE
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $@ ./cmd/vc-pause

# vc-agent is PID 1 of a guest that has no libc: a static cgo build, as
# runc's nsenter is C, with seccomp.
$(BIN)/vc-agent: FORCE
	CGO_ENABLED=1 $(GO) build -tags "netgo osusergo seccomp" -ldflags "-extldflags -static -s -w" -o $@ ./cmd/vc-agent

guest: $(BIN)/vc-agent
	GUEST_KERNEL=$(GUEST_KERNEL) ./hack/guest/build.sh $(BIN)/vc-agent $(GUEST)

proto:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		pkg/agent/protocol/agent.proto

# Also crictl with an /etc/crictl.yaml for vc-cri's socket (unless one
# exists), and the systemd unit, enabled (not started) when systemd runs.
install: build guest
	install -d $(GUEST_DIR) $(PREFIX)/bin
	install -m 0644 $(GUEST)/vmlinux $(GUEST)/vmlinuz $(GUEST)/initramfs.cpio $(GUEST_DIR)/
	install -m 0755 $(BIN)/vc-cri $(BIN)/vc-pause $(PREFIX)/bin/
	./hack/install-crictl.sh $(PREFIX)
	install -d $(SYSTEMD_DIR)
	sed 's|/usr/local/bin/vc-cri|$(PREFIX)/bin/vc-cri|' hack/vc-cri.service >$(SYSTEMD_DIR)/vc-cri.service
	@if [ -d /run/systemd/system ]; then \
		systemctl daemon-reload && systemctl enable vc-cri.service && \
		echo "vc-cri.service enabled: systemctl start vc-cri (make run starts it in the foreground instead)"; \
	else \
		echo "systemd is not running: $(SYSTEMD_DIR)/vc-cri.service installed, not enabled"; \
	fi

# Starts vc-cri in the foreground with its embedded defaults.
run: deps install
	$(PREFIX)/bin/vc-cri config install-cni
	$(PREFIX)/bin/vc-cri check || true
	$(PREFIX)/bin/vc-cri

# Everything CI runs: the checks, unit and VM tests, then the end-to-end
# tests with crictl, the README's quick start, a real kubelet, and critest.
test: deps guest lint test-go fuzz-short e2e quickstart kubelet-e2e critest

# gofmt, go vet and go mod tidy leave nothing to change.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(GOTAGS) ./...
	$(GO) mod tidy -diff

# Unit and VM tests are split by target. test-unit passes -short, on
# which every test that needs root, QEMU or the guest image skips (they
# go through guestDir, testGuest, qemuConfig or requireHost); it needs
# neither root nor the guest, runs in seconds, and runs pkg/cri, whose
# tests are all unit tests on fakes, under the race detector too.
test-unit:
	$(GO) vet $(GOTAGS) ./...
	$(GO) test $(GOTAGS) -short -count=1 -run '^(Test|Fuzz)' ./...
	CGO_ENABLED=1 $(GO) test $(GOTAGS) -short -count=1 -race ./pkg/cri

# Every test, unit and integration: real QEMU (TCG) VMs with the guest
# image, as root.
test-go: guest
	$(GO) test $(GOTAGS) -count=1 -timeout 20m ./...

# Each fuzz target in turn (go test fuzzes one at a time), a few seconds
# each in fuzz-short (counted in inputs, not time: a -fuzztime of seconds
# can fail at its end, go.dev/issue/75804, fixed in Go 1.27), 60 s each in
# fuzz: a guest's replies to the agent client, and
# to pkg/sandbox's consumers of them. A failing input is written to the
# package's testdata/fuzz.
.PHONY: fuzz fuzz-short
fuzz-short:
	$(GO) test $(GOTAGS) -run '^$$' -fuzz '^FuzzAgentReplies$$' -fuzztime 10000x ./pkg/agent/
	$(GO) test $(GOTAGS) -run '^$$' -fuzz '^FuzzGuestReplies$$' -fuzztime 4000x ./pkg/sandbox/

fuzz:
	$(GO) test $(GOTAGS) -run '^$$' -fuzz '^FuzzAgentReplies$$' -fuzztime 60s ./pkg/agent/
	$(GO) test $(GOTAGS) -run '^$$' -fuzz '^FuzzGuestReplies$$' -fuzztime 60s ./pkg/sandbox/

e2e: build guest
	./test/e2e/run.sh

# A real kubelet (built once from the Go module proxy, cached in
# /var/cache/vc-cri/kubelet) running static pods on a private vc-cri.
kubelet-e2e: build guest
	./test/kubelet/run.sh

# The README's quick start, word for word, on a private daemon.
.PHONY: quickstart
quickstart: build guest
	./test/quickstart/run.sh

# Twice: with the default handler (VM pods, and host-namespace pods on
# runc), then with every pod on the runc handler.
critest: build guest
	CRITEST_PARALLEL=2 ./test/critest/run.sh
	CRITEST_PARALLEL=2 CRITEST_HANDLER=runc ./test/critest/run.sh

bench: build guest
	$(GO) test $(GOTAGS) -run '^$$' -bench . -benchtime 5x ./pkg/agent/
	./hack/bench/run.sh

# Long runs, not in `make test`: 10 pods at once (5 rounds), 100 pod
# cycles, stats with 50 idle pods; figures in _output/soak/figures.txt.
soak: build guest
	./hack/soak/run.sh

bench-image:
	CGO_ENABLED=0 $(GO) run $(GOTAGS) ./hack/imagebench -n 5

testregistry-start:
	$(GO) run $(GOTAGS) ./hack/testregistry start -addr 127.0.0.1:5000 -pidfile $(OUT)/testregistry.pid -log $(OUT)/testregistry.log

testregistry-stop:
	$(GO) run $(GOTAGS) ./hack/testregistry stop -pidfile $(OUT)/testregistry.pid

clean:
	rm -rf $(OUT)

FORCE:
