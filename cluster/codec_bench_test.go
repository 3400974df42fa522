package cluster

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/ringcache/ringcache/storage"
)

// BenchmarkCRC16 hashes a 16-byte key, the size the memory benchmark uses.
func BenchmarkCRC16(b *testing.B) {
	key := []byte("key:000000123456")
	var sink uint16
	for b.Loop() {
		sink += CRC16(key)
	}
	_ = sink
}

// benchBatch is n mutations with 16-byte keys and size-byte values.
func benchBatch(n, size int) []storage.Mutation {
	ms := make([]storage.Mutation, n)
	val := bytes.Repeat([]byte("v"), size)
	for i := range ms {
		key := fmt.Appendf(nil, "key:%012d", i)
		ms[i] = storage.Mutation{Slot: KeySlot(key), Key: key, Rec: storage.Record{Value: val, Version: uint64(i) << 16, ExpireAt: 1893456000000}}
	}
	return ms
}

// BenchmarkAppendMutation encodes a batch of 64 writes as the replicator
// ships it to a replica.
func BenchmarkAppendMutation(b *testing.B) {
	for _, size := range []int{3, 100, 1024} {
		ms := benchBatch(64, size)
		b.Run("value="+strconv.Itoa(size), func(b *testing.B) {
			buf := make([]byte, 0, 128<<10)
			for b.Loop() {
				buf = buf[:0]
				for _, m := range ms {
					buf = AppendMutation(buf, m)
				}
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ms)), "ns/record")
		})
	}
}

// BenchmarkDecodeBatch decodes the same batch on the replica's side.
func BenchmarkDecodeBatch(b *testing.B) {
	for _, size := range []int{3, 100, 1024} {
		var buf []byte
		for _, m := range benchBatch(64, size) {
			buf = AppendMutation(buf, m)
		}
		b.Run("value="+strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			var n int
			for b.Loop() {
				err := DecodeBatch(buf, func(m storage.Mutation) error {
					n += len(m.Key)
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/record")
		})
	}
}
