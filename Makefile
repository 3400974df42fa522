# ringcache: a Redis-compatible cache cluster.
GO      ?= go
BIN     := bin/ringcache
PORT    ?= 6379
DATA    ?= ./data
FUZZTIME ?= 30s

.PHONY: build run run-one test node-deps fuzz bench bench-ring lint clean

build:
	$(GO) build -o $(BIN) ./cmd/ringcache

# A three-node cluster on loopback: RESP on 7001-7003, gossip on
# 17001-17003, data in $(DATA)/node-N, logs in $(DATA)/node-N.log. Ctrl-C
# stops all three (each hands over cleanly on SIGTERM).
run: build
	@mkdir -p $(DATA)
	@bash -c 'set -u; pids=(); \
	  trap "kill \$${pids[*]} 2>/dev/null; wait" INT TERM EXIT; \
	  for i in 1 2 3; do \
	    join=""; [ $$i -gt 1 ] && join="--join 127.0.0.1:17001"; \
	    ./$(BIN) --bind 127.0.0.1 --port 700$$i --dir $(DATA)/node-$$i $$join $(ARGS) >>$(DATA)/node-$$i.log 2>&1 & pids+=($$!); \
	  done; \
	  for i in 1 2 3; do \
	    for t in $$(seq 100); do \
	      (exec 3<>/dev/tcp/127.0.0.1/700$$i && printf "PING\r\n" >&3 && head -c 7 <&3 | grep -q PONG) 2>/dev/null && break; \
	      kill -0 $${pids[$$((i-1))]} 2>/dev/null || { echo "node $$i failed to start; see $(DATA)/node-$$i.log"; tail -5 $(DATA)/node-$$i.log; exit 1; }; \
	      sleep 0.1; \
	    done; \
	  done; \
	  echo "ringcache: 3 nodes on 127.0.0.1:7001-7003 (logs: $(DATA)/node-N.log). Ctrl-C stops them."; \
	  echo "In another terminal:  redis-cli -c -p 7001"; \
	  wait'

# One node on 127.0.0.1:$(PORT), data in $(DATA)/single.
run-one: build
	@echo "ringcache on 127.0.0.1:$(PORT), data in $(DATA)/single. In another terminal:  redis-cli -c -p $(PORT)"
	@exec ./$(BIN) --bind 127.0.0.1 --port $(PORT) --dir $(DATA)/single

test: node-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# The Node.js clients (node-redis, ioredis) the client tests drive, pinned
# by package-lock.json, installed into a folder git ignores. Without npm the
# tests that need them skip.
NODE_DIR := cmd/ringcache/testdata/node
node-deps: $(NODE_DIR)/node_modules/.package-lock.json

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null; then cd $(NODE_DIR) && npm ci --no-audit --no-fund; \
	else echo "npm not found: the Node.js client tests will skip"; fi

fuzz:
	$(GO) test ./resp -run '^$$' -fuzz FuzzGuard -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzMatch -fuzztime $(FUZZTIME)
	$(GO) test ./server -run '^$$' -fuzz FuzzCommand -fuzztime $(FUZZTIME)

bench:
	$(GO) run ./bench/suite $(ARGS)

bench-ring:
	$(GO) run ./bench/ring

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin
