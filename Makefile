# ringcache: a Redis-compatible cache cluster.
GO      ?= go
BIN     := bin/ringcache
PORT    ?= 6379
DATA    ?= ./data
FUZZTIME ?= 30s

.PHONY: build run test fuzz bench lint clean

build:
	$(GO) build -o $(BIN) ./cmd/ringcache

# One node on 127.0.0.1:$(PORT) with its data in $(DATA).
run: build
	@echo "ringcache on 127.0.0.1:$(PORT), data in $(DATA). In another terminal:  redis-cli -p $(PORT)"
	@exec ./$(BIN) --bind 127.0.0.1 --port $(PORT) --dir $(DATA)

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

fuzz:
	$(GO) test ./resp -run '^$$' -fuzz FuzzGuard -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzMatch -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzCommand -fuzztime $(FUZZTIME)

bench:
	$(GO) run ./bench/sidebyside

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin
