package cluster

import "testing"

func TestCRC16Vector(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("CRC16(123456789) = %#x, want 0x31c3", got)
	}
}

func TestKeySlot(t *testing.T) {
	tests := []struct {
		key  string
		want uint16
	}{
		{"somekey", 11058},
		{"foo{hash_tag}", 2515},
		{"foo", 12182},
		{"{foo}.bar", 12182},
		{"bar{foo}", 12182},
		{"{}foo", CRC16([]byte("{}foo")) % SlotCount}, // empty tag: whole key
		{"foo{}{bar}", CRC16([]byte("foo{}{bar}")) % SlotCount}, // empty first tag: whole key
		{"foo{{bar}}zap", CRC16([]byte("{bar")) % SlotCount},    // tag runs from the first '{' to the first '}'
		{"foo{bar}{zap}", CRC16([]byte("bar")) % SlotCount},
		{"{user1000}.following", CRC16([]byte("user1000")) % SlotCount},
		{"", 0},
		{"{", CRC16([]byte("{")) % SlotCount},
	}
	for _, tt := range tests {
		if got := KeySlot([]byte(tt.key)); got != tt.want {
			t.Errorf("KeySlot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func BenchmarkKeySlot(b *testing.B) {
	key := []byte("user:{1000}:profile")
	for b.Loop() {
		KeySlot(key)
	}
}
