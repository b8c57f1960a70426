# coalmine: the two commands are `make demo` and `make test`. Everything they need is installed
# by the scripts they call.

GO        ?= go
BIN       := bin
# A count of runs, not a duration: with a duration, Go 1.26's fuzz coordinator can fail a target
# with "context deadline exceeded" as the time runs out on a busy machine (golang/go#75804, fixed
# in Go 1.27; seen here in `make test`). 20,000 runs take 10-25 s per target on two cores.
FUZZTIME  ?= 20000x
export PATH := $(PATH):/usr/local/go/bin

# Fuzz targets: package:target. `make test` runs each briefly; `make fuzz FUZZTIME=2000000x` longer.
FUZZ_TARGETS := ./policies:FuzzLoad ./policies:FuzzRender ./metrics/promapi:FuzzDecode ./analyzer:FuzzDecodeProgress ./metrics/scrape:FuzzPodPage

.PHONY: all build deps test unit vet fuzz demo clean generate generated image image-test bench-daemon bench-judge bench-pods bench-hostile

all: build

# The version stamped into the binary (coalmine version, coalmine_build_info) and the image's
# tag: the nearest tag (a release is the commit tagged vX.Y.Z, the VERSION file's content there),
# else the VERSION file, which deploy/ pins (go test ./deploy checks); VERSION=v1.2.3 make build
# to set it.
VERSION   ?= $(shell git describe --tags --dirty 2>/dev/null || cat VERSION)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/coalmine/coalmine/buildinfo.version=$(VERSION) -X github.com/coalmine/coalmine/buildinfo.commit=$(COMMIT) -X github.com/coalmine/coalmine/buildinfo.date=$(DATE)

# build also installs coalmine as bin/kubectl-coalmine: on the PATH, `kubectl coalmine ...` runs it.
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	cp $(BIN)/coalmine $(BIN)/kubectl-coalmine

# deps installs the real components the tests and the demo run against: Debian's Prometheus and
# VictoriaMetrics (a second engine of the Prometheus query API), and, built once from the Go
# module proxy into ~/.cache/coalmine (about 10 minutes cold, under a second when cached), etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and Prometheus 3 with
# Kubernetes discovery; helm, which the chart's tests run (built the same way: 9 CPU-minutes
# cold, some 5 minutes on two idle cores); and Debian's chromium, in which the HTML report is
# rendered and checked.
deps:
	bash scripts/install-prometheus.sh
	bash scripts/install-victoria-metrics.sh
	bash scripts/install-chromium.sh
	bash scripts/install-kube.sh
	bash scripts/install-helm.sh

vet:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# unit runs every Go test, including those against a real Prometheus. The longest package,
# cmd/coalmine (the end-to-end tests), takes about 25 minutes on two cores: its timeout leaves room.
unit: deps
	$(GO) test -race -count=1 -timeout 40m ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

test: vet generated unit fuzz

# generate writes what is generated from the policy types: the CanaryPolicy
# CustomResourceDefinition (controller-gen, built outside go.mod into ~/.cache/coalmine/tools by
# scripts/install-tools.sh: about 4 minutes the first time, then cached) and the JSON Schema for
# editors derived from it.
CRD_DIR    := deploy/crd
SCHEMA_DIR := policies/schema

generate:
	@cg="$$(bash scripts/install-tools.sh | tail -n 1)"; \
	"$$cg" crd:allowDangerousTypes=true paths=./policies output:crd:dir=$(CRD_DIR)
	cp $(CRD_DIR)/*.yaml charts/coalmine/crds/
	$(GO) test -count=1 -run '^TestJSONSchema$$' ./$(SCHEMA_DIR) -update

# generated fails when the committed CRD or JSON Schema differ from what the types generate.
generated:
	@cg="$$(bash scripts/install-tools.sh | tail -n 1)"; tmp="$$(mktemp -d)"; \
	"$$cg" crd:allowDangerousTypes=true paths=./policies output:crd:dir="$$tmp" && \
	diff -u $(CRD_DIR)/coalmine.dev_canarypolicies.yaml "$$tmp/coalmine.dev_canarypolicies.yaml"; rc=$$?; rm -rf "$$tmp"; \
	if [ $$rc -ne 0 ]; then echo "$(CRD_DIR) is out of date with policies/: run make generate"; exit 1; fi
	$(GO) test -count=1 -run '^TestJSONSchema$$' ./$(SCHEMA_DIR)

demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf $(BIN)

# image: coalmine's container image, built without Docker by cmd/coalmine-image: the static
# binary (CGO_ENABLED=0, -trimpath, stamped as above) as the entrypoint, this machine's CA bundle
# and a nonroot user (65532), nothing else. Writes bin/image (an OCI image layout) and
# bin/coalmine-image.tar (docker save: the first platform), both $(IMAGE):$(VERSION), and prints
# the digest and size. Every timestamp is the commit's date, so a rebuild gives the same digest.
# PLATFORMS=linux/amd64,linux/arm64 builds both (the layout then holds an index).
IMAGE     ?= ghcr.io/coalmine/coalmine
PLATFORMS ?= linux/amd64
CA_CERTS  ?= /etc/ssl/certs/ca-certificates.crt

image:
	@set -e; binaries=; \
	for p in $$(echo '$(PLATFORMS)' | tr , ' '); do \
		out=$(BIN)/image-build/$$(echo $$p | tr / _)/coalmine; \
		echo "go build $$p: $$out"; \
		CGO_ENABLED=0 GOOS=$${p%%/*} GOARCH=$${p##*/} $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $$out ./cmd/coalmine; \
		binaries="$$binaries -binary $$p=$$out"; \
	done; \
	$(GO) run ./cmd/coalmine-image $$binaries -repository '$(IMAGE)' -version '$(VERSION)' -revision '$(COMMIT)' \
		-created '$(DATE)' -ca-certs '$(CA_CERTS)' -layout $(BIN)/image -tarball $(BIN)/coalmine-image.tar

# image-test: cmd/coalmine-image's TestImage on coalmine itself rather than a stand-in (which
# `make test` runs): builds it static twice, checks the two images' digests agree, unpacks one
# and runs `/coalmine version` in it, chrooted as 65532 when run as root. Seconds with a warm
# build cache; a cold static build of coalmine takes minutes on 2 cores.
image-test:
	$(GO) test -count=1 -timeout 30m -run '^TestImage$$' ./cmd/coalmine-image -args -coalmine

# bench-daemon: 10, 100 and 1,000 canaries ticking at once against a stub Prometheus, printed as
# a table: CPU per tick (all canaries), peak and live heap per canary, Prometheus queries per tick.
# Then the daemon against a sandbox cluster's real API server (BENCH_DAEMON_CANARIES canaries, one
# cluster per number, each canary in its own namespace with 11 kwok pods; a stub Prometheus): API
# requests per canary per quiet tick on Deployments, ReplicaSets, pods, Services and Events
# (reads, writes: apiserver_request_total less the controllers' background; sent: every request
# the daemon's own client sent), CPU per tick and share of one core, heap and RSS, and the time
# until every canary is at step 1; then the detailed report (requests by verb and resource, at
# start and per tick, the extrapolation to 1,000 canaries).
# About 6 minutes for 200 canaries on 2 cores, 13 more for 500.
BENCH_DAEMON_CANARIES ?= 200,500

bench-daemon: deps
	@$(GO) test -run '^$$' -bench BenchmarkDaemonTick -benchtime 10x ./daemon | awk ' \
		BEGIN { printf "%-10s %14s %18s %18s %14s\n", "canaries", "cpu-ms/tick", "peak-KiB/canary", "live-KiB/canary", "queries/tick" } \
		/^BenchmarkDaemonTick/ { split($$1, a, "="); sub(/-[0-9]+$$/, "", a[2]); \
			for (i = 2; i <= NF; i++) v[$$(i+1)] = $$i; \
			printf "%-10s %14s %18s %18s %14s\n", a[2], v["cpu-ms/tick"], v["peak-KiB/canary"], v["live-KiB/canary"], v["queries/tick"] } \
		/^--- FAIL/ { fail = 1; print; next } \
		/^--- BENCH/ { fail = 0; next } \
		fail && /^[ \t]/ { print; next } \
		/^(ok|FAIL)/ { print }'
	@report="$$(mktemp)"; \
	$(GO) test -run '^$$' -bench BenchmarkDaemonRealAPIServer -benchtime 1x -timeout 90m ./daemon \
		-args -real-canaries=$(BENCH_DAEMON_CANARIES) -real-report="$$report" | awk ' \
		BEGIN { printf "\nreal API server (sandbox), stub Prometheus:\n%-10s %18s %19s %20s %12s %20s %14s %14s %9s %10s\n", \
			"canaries", "reads/canary/tick", "writes/canary/tick", "sent/canary/tick", "cpu-ms/tick", "cpu-share-of-1-core", \
			"peak-heap-MiB", "live-heap-MiB", "rss-MiB", "startup-s" } \
		/^BenchmarkDaemonRealAPIServer/ { split($$1, a, "="); sub(/-[0-9]+$$/, "", a[2]); \
			for (i = 2; i <= NF; i++) v[$$(i+1)] = $$i; \
			printf "%-10s %18s %19s %20s %12s %20s %14s %14s %9s %10s\n", a[2], v["reads/canary/tick"], v["writes/canary/tick"], \
				v["client-requests/canary/tick"], v["cpu-ms/tick"], v["cpu-share-of-1-core"], v["peak-heap-MiB"], \
				v["live-heap-MiB"], v["rss-MiB"], v["startup-s"] } \
		/^--- FAIL/ { fail = 1; print; next } \
		/^--- BENCH/ { fail = 0; next } \
		fail && /^[ \t]/ { print; next } \
		/^(ok|FAIL)/ { print }'; \
	echo; cat "$$report"; rm -f "$$report"

# bench-judge: every judge (sequential, threshold, mannwhitney and the oracle SPRT) fed the same
# simulated canaries with fixed seeds, printed as a table per judge: false rollbacks on healthy
# canaries, time to catch regressions, time to promote; then the sequential judge against its
# targets. About 5 minutes on 2 cores; BENCH_JUDGE_FLAGS='-format markdown' for the README.
bench-judge:
	@$(GO) run ./cmd/coalmine-judgebench $(BENCH_JUDGE_FLAGS)

# bench-hostile: the heap's peak while coalmine reads what a hostile canary or Prometheus sends: a
# 64 MiB pod page (of a family the policy does not read, and of its own counter) and a 300 MB
# Prometheus answer. Each is refused or cut down; the peak is above where the heap began.
bench-hostile:
	@$(GO) test -run '^$$' -bench 'BenchmarkHostile' -benchtime 3x ./metrics/scrape ./metrics/promapi | \
		awk '/^BenchmarkHostile/ { printf "%-45s %10s peak heap MiB\n", $$1, $$5 }'

# bench-pods: the pods source against Prometheus. The time from an injected regression to the
# rollback, both sources on one sandbox (Prometheus scraping every 15 s), and the pods source's
# cost per pod per tick (one scrape and parse, bytes read).
bench-pods: deps
	@$(GO) test -run '^$$' -bench 'BenchmarkRegressionToRollback' -benchtime 1x -timeout 20m ./cmd/coalmine | awk ' \
		/^BenchmarkRegressionToRollback/ { for (i = 2; i <= NF; i++) v[$$(i+1)] = $$i; \
			printf "%-40s %22s %22s\n", "seconds from the regression to the rollback", "v2 bad from the start", "v2 bad after 30 s"; \
			printf "%-40s %22s %22s\n", "prometheus (scraping every " v["s-scrape-interval"] " s)", v["s-start-prometheus"], v["s-late-prometheus"]; \
			printf "%-40s %22s %22s\n", "pods", v["s-start-pods"], v["s-late-pods"] } \
		/rolled back/ { sub(/^[ \t]*detection_bench_test.go:[0-9]+: /, ""); print "  " $$0 } \
		/^(FAIL|---)/ { print }'
	@$(GO) test -run '^$$' -bench 'BenchmarkPodScrape' -benchtime 2s ./metrics/scrape | awk ' \
		BEGIN { printf "\n%-10s %14s %14s %12s %12s\n", "format", "us/pod/tick", "bytes/scrape", "B alloc", "allocs" } \
		/^BenchmarkPodScrape/ { split($$1, a, "/"); sub(/-[0-9]+$$/, "", a[2]); \
			for (i = 2; i <= NF; i++) v[$$(i+1)] = $$i; \
			printf "%-10s %14.0f %14s %12s %12s\n", a[2], v["ns/op"] / 1000, v["bytes/scrape"], v["B/op"], v["allocs/op"] } \
		/^(FAIL|---)/ { print }'
