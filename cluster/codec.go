package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ringcache/ringcache/storage"
)

// The replication wire format. A batch is a concatenation of records, so
// batches from many writers join by appending:
//
//	record = slot (2 bytes BE) | flags (1: tombstone 1, raw 2) | version (8 BE) | expireAt (8 BE)
//	         | key length (uvarint) | key | value length (uvarint) | value
//
// A digest request is a list of slots (2 bytes BE each); its reply carries
// one 8-byte digest per slot, in the same order.

const (
	recordHeaderLen = 2 + 1 + 8 + 8
	flagTombstone   = 1
	// flagRaw carries storage.Record.Raw (OBJECT ENCODING's "raw").
	flagRaw = 2
)

// ErrBadBatch is returned for a batch that does not decode.
var ErrBadBatch = errors.New("cluster: malformed replication batch")

// AppendMutation appends m's wire form to b.
func AppendMutation(b []byte, m storage.Mutation) []byte {
	var flags byte
	if m.Rec.Tombstone {
		flags = flagTombstone
	}
	if m.Rec.Raw {
		flags |= flagRaw
	}
	b = binary.BigEndian.AppendUint16(b, m.Slot)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, m.Rec.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Rec.ExpireAt))
	b = binary.AppendUvarint(b, uint64(len(m.Key)))
	b = append(b, m.Key...)
	b = binary.AppendUvarint(b, uint64(len(m.Rec.Value)))
	return append(b, m.Rec.Value...)
}

// DecodeBatch calls fn for each record of a batch. The mutation's Key and
// Value alias b. It stops at the first malformed record, or fn's error.
func DecodeBatch(b []byte, fn func(m storage.Mutation) error) error {
	for len(b) > 0 {
		if len(b) < recordHeaderLen {
			return fmt.Errorf("%w: truncated header", ErrBadBatch)
		}
		var m storage.Mutation
		m.Slot = binary.BigEndian.Uint16(b)
		flags := b[2]
		m.Rec.Version = binary.BigEndian.Uint64(b[3:])
		m.Rec.ExpireAt = int64(binary.BigEndian.Uint64(b[11:]))
		b = b[recordHeaderLen:]
		if m.Slot >= SlotCount || flags&^(flagTombstone|flagRaw) != 0 || m.Rec.ExpireAt < 0 {
			return fmt.Errorf("%w: bad slot, flags or expiry", ErrBadBatch)
		}
		m.Rec.Tombstone = flags&flagTombstone != 0
		m.Rec.Raw = flags&flagRaw != 0
		var ok bool
		if m.Key, b, ok = lengthPrefixed(b); !ok {
			return fmt.Errorf("%w: bad key length", ErrBadBatch)
		}
		if m.Rec.Value, b, ok = lengthPrefixed(b); !ok {
			return fmt.Errorf("%w: bad value length", ErrBadBatch)
		}
		if m.Rec.Tombstone && len(m.Rec.Value) > 0 {
			return fmt.Errorf("%w: tombstone with a value", ErrBadBatch)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// lengthPrefixed splits a uvarint-prefixed byte string off b.
func lengthPrefixed(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	end := k + int(n)
	return b[k:end:end], b[end:], true
}

// appendSlots encodes a digest request.
func appendSlots(b []byte, slots []uint16) []byte {
	for _, s := range slots {
		b = binary.BigEndian.AppendUint16(b, s)
	}
	return b
}

// decodeSlots decodes a digest request.
func decodeSlots(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 || len(b)/2 > SlotCount {
		return nil, fmt.Errorf("%w: bad slot list", ErrBadBatch)
	}
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(b[2*i:])
		if out[i] >= SlotCount {
			return nil, fmt.Errorf("%w: slot %d out of range", ErrBadBatch, out[i])
		}
	}
	return out, nil
}

// decodeDigests decodes a digest reply for n slots.
func decodeDigests(b []byte, n int) ([]uint64, error) {
	if len(b) != 8*n {
		return nil, fmt.Errorf("%w: %d digest bytes for %d slots", ErrBadBatch, len(b), n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return out, nil
}
