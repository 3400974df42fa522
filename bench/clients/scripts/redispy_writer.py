"""Writes through redis-py's RedisCluster with its default options, in
WORKERS threads (a client each), each owning the keys i % WORKERS == w, and
prints one line per write: "ok|err key seq startMs endMs [error]". It stops
when its standard input closes. Usage: python3 redispy_writer.py
host:port[,host:port...] workers key [key...]"""
import itertools
import sys
import threading
import time

from redis.cluster import ClusterNode, RedisCluster

seeds = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[1].split(",")]
workers = int(sys.argv[2])
keys = sys.argv[3:]
seq = itertools.count(1)
stopping = threading.Event()
out_lock = threading.Lock()


def out(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def worker(w):
    client = None
    while not stopping.is_set():
        for key in keys[w::workers]:
            if stopping.is_set():
                return
            s = next(seq)
            start = int(time.time() * 1000)
            try:
                if client is None:
                    # Nodes of its own: redis-py keeps connection state
                    # in them, which a client that shares them cannot copy.
                    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds])
                client.set(key, str(s))
                out(f"ok {key} {s} {start} {int(time.time() * 1000)}")
            except Exception as e:  # every failure is a refused write here
                msg = " ".join(str(e).split()) or type(e).__name__
                if "cannot pickle" in msg:
                    # redis-py before 4.4.0 (Debian 12 ships 4.3.4) can
                    # break for good in a failover: its slot map reload
                    # deep-copies a lock (redis-py pull request 2377).
                    # Applications work around it with a new client.
                    client = None
                out(f"err {key} {s} {start} {int(time.time() * 1000)} {msg}")


threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(workers)]
for t in threads:
    t.start()
sys.stdin.read()
stopping.set()
for t in threads:
    t.join(timeout=5)
