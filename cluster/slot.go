package cluster

// SlotCount is the number of hash slots, as in Redis Cluster.
const SlotCount = 16384

// crc16Table is the CRC16-XMODEM (polynomial 0x1021) lookup table, built once.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// CRC16 is CRC16-XMODEM, the checksum Redis Cluster uses for key slots.
func CRC16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^c]
	}
	return crc
}

// KeySlot returns the hash slot of key exactly as Redis Cluster computes it:
// when the key holds a non-empty hash tag ("{...}", first '{' and the first
// '}' after it), only the tag is hashed, so related keys can share a slot.
// Every cluster client computes the same function on its side.
func KeySlot(key []byte) uint16 {
	for i, c := range key {
		if c != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j > i+1 {
					key = key[i+1 : j]
				}
				return CRC16(key) % SlotCount
			}
		}
		break
	}
	return CRC16(key) % SlotCount
}
