# coalmine: the two commands are `make demo` and `make test`. Everything they need is installed
# by the scripts they call.

GO        ?= go
BIN       := bin
FUZZTIME  ?= 10s
export PATH := $(PATH):/usr/local/go/bin

# Fuzz targets: package:target. `make test` runs each briefly; `make fuzz FUZZTIME=5m` longer.
FUZZ_TARGETS := ./policies:FuzzLoad ./policies:FuzzRender ./metrics:FuzzDecode

.PHONY: all build deps test unit vet fuzz demo clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# deps installs the real components the tests and the demo run against (a real Prometheus).
deps:
	bash scripts/install-prometheus.sh

vet:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# unit runs every Go test, including those against a real Prometheus.
unit: deps
	$(GO) test -race -count=1 ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

test: vet unit fuzz

demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf $(BIN)
