package storage

import "encoding/binary"

// A block is one key's state as the keyspace holds it, in the arena
// (outside the Go heap):
//
//	bytes 0-7    version, uint64 little-endian
//	byte 8       flags: bit 0 tombstone, bit 1 has an expiry, bit 2 raw
//	             string encoding, bits 4-7 the value type
//	[8 bytes]    expireAt, unix ms, int64 little-endian, when bit 1 is set
//	uvarint      key length, then the key
//	uvarint      value length, then the value
//
// The slot is the shard's (one shard per slot), and the access clock lives
// beside the key's table slot, where eviction samples it without reading
// the block. At 16-byte keys and 100-byte values a block is 127 bytes, 128
// with its size class.
const (
	blkVersion = 0
	blkFlags   = 8
	blkFixed   = 9

	blkTombstone = 0x01
	blkExpiry    = 0x02
	blkRaw       = 0x04
)

// blockLen is the length of the block of a record with a key of klen bytes.
func blockLen(klen int, rec *Record) int {
	n := blkFixed + uvarintLen(uint64(klen)) + klen + uvarintLen(uint64(len(rec.Value))) + len(rec.Value)
	if rec.ExpireAt != 0 && !rec.Tombstone {
		n += 8
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// putBlock writes rec for key into b, which is blockLen long.
func putBlock(b []byte, key []byte, rec *Record) {
	binary.LittleEndian.PutUint64(b[blkVersion:], rec.Version)
	var flags byte
	i := blkFixed
	switch {
	case rec.Tombstone:
		flags = blkTombstone
	case rec.ExpireAt != 0:
		flags = blkExpiry
		binary.LittleEndian.PutUint64(b[i:], uint64(rec.ExpireAt))
		i += 8
	}
	if rec.Raw {
		flags |= blkRaw
	}
	b[blkFlags] = flags | byte(TypeString)<<typeShift
	i += binary.PutUvarint(b[i:], uint64(len(key)))
	i += copy(b[i:], key)
	i += binary.PutUvarint(b[i:], uint64(len(rec.Value)))
	copy(b[i:], rec.Value)
}

// block is a view of a block's bytes (from its start to the end of its
// span: its length is in its header).
type block []byte

func (b block) version() uint64 { return binary.LittleEndian.Uint64(b[blkVersion:]) }
func (b block) tombstone() bool { return b[blkFlags]&blkTombstone != 0 }

// expireAt is the block's expiry, 0 for none.
func (b block) expireAt() int64 {
	if b[blkFlags]&blkExpiry == 0 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b[blkFixed:]))
}

// parts splits the block into key and value and returns its length.
func (b block) parts() (key, value []byte, n int) {
	i := blkFixed
	if b[blkFlags]&blkExpiry != 0 {
		i += 8
	}
	kl, k := binary.Uvarint(b[i:])
	i += k
	key = b[i : i+int(kl) : i+int(kl)]
	i += int(kl)
	vl, k := binary.Uvarint(b[i:])
	i += k
	value = b[i : i+int(vl) : i+int(vl)]
	return key, value, i + int(vl)
}

func (b block) key() []byte { k, _, _ := b.parts(); return k }

// record decodes the block. The value is the block's memory.
func (b block) record() Record {
	_, v, _ := b.parts()
	rec := Record{Version: b.version(), ExpireAt: b.expireAt(), Tombstone: b.tombstone(), Raw: b[blkFlags]&blkRaw != 0}
	if !rec.Tombstone {
		rec.Value = v
	}
	return rec
}
