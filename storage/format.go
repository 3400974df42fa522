package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SlotCount is the number of hash slots (as in Redis Cluster). Slot numbers
// passed to the store must be below it.
const SlotCount = 16384

const (
	// slotKeyFlag marks the first byte of every user-data key. It keeps user
	// data clear of Badger's reserved "!badger!" prefix (0x21) and leaves
	// 0x00-0x7f to node metadata.
	slotKeyFlag = 0x80
	// slotPrefixLen is the length of the slot prefix of a user-data key.
	slotPrefixLen = 2

	// legacyExpiryIndexPrefix is the first byte of the expiry-index keys
	// earlier versions kept in Badger (0x01, expireAt, slot, user key). The
	// schedule is now in memory (expiryqueue.go); Open drops whatever is
	// left of the old index.
	legacyExpiryIndexPrefix = 0x01

	// headerLen is the length of the value header: flags/type, version,
	// expireAt.
	headerLen = 1 + 8 + 8

	// flagTombstone marks a record as deleted, in the header's first byte
	// and, mirrored, in Badger's UserMeta (so key-only iteration can skip
	// tombstones without reading values).
	flagTombstone = 0x01
	// flagRaw marks a raw-encoded string (Record.Raw).
	flagRaw = 0x02
	// flagMask selects the flag bits of the header's first byte; the high
	// nibble is the value type.
	flagMask = 0x0f
	// typeShift positions the value type in the header's first byte.
	typeShift = 4

	// maxBadgerKeyLen is Badger's own key-length limit.
	maxBadgerKeyLen = 65000
)

// MaxKeyLen is the longest user key the store accepts. It is bounded by
// Badger's key-length limit minus the prefix the store adds. (It stays
// where it was when an expiry index, with a longer prefix, was in Badger,
// so that a key accepted once is accepted by every version.)
const MaxKeyLen = maxBadgerKeyLen - 11

// ValueType identifies the data type of a record's payload. Only strings
// exist today; the header reserves room so that other types can be added
// without a format change.
type ValueType uint8

// TypeString is the value type of plain string values.
const TypeString ValueType = 0

var (
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("storage: store is closed")
	// ErrKeyTooLarge is the failure of a write whose key is longer than
	// MaxKeyLen.
	ErrKeyTooLarge = errors.New("storage: key too large")
	// ErrValueTooLarge is the failure of a write whose value is longer than
	// Store.MaxValueLen.
	ErrValueTooLarge = errors.New("storage: value too large")
	// ErrBadExpiry is the failure of a write with a negative expireAt.
	ErrBadExpiry = errors.New("storage: negative expiry time")
	// ErrCorrupt reports a stored value that cannot be decoded.
	ErrCorrupt = errors.New("storage: corrupt record")
)

// header is the decoded fixed-size prefix of a stored value.
type header struct {
	flags    byte
	typ      ValueType
	version  uint64
	expireAt int64
}

func (h header) tombstone() bool { return h.flags&flagTombstone != 0 }

// liveAt reports whether the record is visible at now (unix ms): neither a
// tombstone nor expired.
func (r *Record) liveAt(now int64) bool {
	return !r.Tombstone && (r.ExpireAt == 0 || r.ExpireAt > now)
}

// decodeHeader splits a stored value into its header and payload.
func decodeHeader(v []byte) (header, []byte, error) {
	if len(v) < headerLen {
		return header{}, nil, fmt.Errorf("%w: value of %d bytes is shorter than the header", ErrCorrupt, len(v))
	}
	h := header{
		flags:    v[0] & flagMask,
		typ:      ValueType(v[0] >> typeShift),
		version:  binary.BigEndian.Uint64(v[1:9]),
		expireAt: int64(binary.BigEndian.Uint64(v[9:17])),
	}
	if h.typ != TypeString {
		return header{}, nil, fmt.Errorf("%w: unknown value type %d", ErrCorrupt, h.typ)
	}
	return h, v[headerLen:], nil
}

// putHeader writes the header for rec at the start of dst, which must be at
// least headerLen long.
func putHeader(dst []byte, typ ValueType, rec *Record) {
	var flags byte
	if rec.Tombstone {
		flags |= flagTombstone
	}
	if rec.Raw {
		flags |= flagRaw
	}
	dst[0] = flags | byte(typ)<<typeShift
	binary.BigEndian.PutUint64(dst[1:9], rec.Version)
	binary.BigEndian.PutUint64(dst[9:17], uint64(rec.ExpireAt))
}

// slotPrefix returns the two-byte Badger key prefix of a slot.
func slotPrefix(slot uint16) [slotPrefixLen]byte {
	return [slotPrefixLen]byte{slotKeyFlag | byte(slot>>8), byte(slot)}
}

// appendDataKey appends the Badger key of (slot, key) to dst.
func appendDataKey(dst []byte, slot uint16, key []byte) []byte {
	p := slotPrefix(slot)
	dst = append(dst, p[0], p[1])
	return append(dst, key...)
}

// parseDataKey splits a Badger user-data key into slot and user key. ok is
// false for keys outside the user-data range.
func parseDataKey(bk []byte) (slot uint16, key []byte, ok bool) {
	if len(bk) < slotPrefixLen || bk[0]&slotKeyFlag == 0 {
		return 0, nil, false
	}
	return uint16(bk[0]&^slotKeyFlag)<<8 | uint16(bk[1]), bk[slotPrefixLen:], true
}

// allSlotPrefixes returns the one-byte prefixes that together cover every
// slot's data (0x80..0xBF, as slots are 14 bits).
func allSlotPrefixes() [][]byte {
	ps := make([][]byte, 0, SlotCount>>8)
	for hi := 0; hi < SlotCount>>8; hi++ {
		ps = append(ps, []byte{slotKeyFlag | byte(hi)})
	}
	return ps
}

// badgerExpiresAt converts a millisecond expiry into Badger's
// seconds-resolution ExpiresAt, rounding up (so Badger never hides a record
// before its millisecond expiry) and adding grace (see badgerExpiryGrace).
func badgerExpiresAt(expireAtMs int64, grace int64) uint64 {
	if expireAtMs <= 0 {
		return 0
	}
	secs := (expireAtMs + 999) / 1000
	return uint64(secs + grace)
}
