package storage

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestBadgerLoggerPassesWarningsOnly(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Debugf("debug %d", 1)
	l.Infof("info %d\n", 2)
	l.Warningf("warning %d\n", 3)
	l.Errorf("error %d", 4)
	out := buf.String()
	for _, s := range []string{"debug 1", "info 2"} {
		if strings.Contains(out, s) {
			t.Errorf("%q was logged", s)
		}
	}
	for _, s := range []string{`level=WARN msg="warning 3" component=badger`, `level=ERROR msg="error 4" component=badger`} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in %q", s, out)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Dir: "x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultOptions()
	if o.Fsync != FsyncNo || o.MemTableSize != d.MemTableSize || o.BlockCacheSize != d.BlockCacheSize ||
		o.TombstoneTTL != d.TombstoneTTL || o.ExpiryInterval != d.ExpiryInterval || o.Logger == nil {
		t.Errorf("defaults not applied: %+v", o)
	}
	if o.IndexCacheSize != 0 {
		t.Errorf("IndexCacheSize 0 should stay Badger's default, got %d", o.IndexCacheSize)
	}
	if bo := o.badgerOptions(); bo.DetectConflicts || bo.SyncWrites || bo.ValueThreshold > bo.MemTableSize*15/100 {
		t.Errorf("badger options: conflicts=%v sync=%v threshold=%d", bo.DetectConflicts, bo.SyncWrites, bo.ValueThreshold)
	}
	o.Fsync = FsyncAlways
	if !o.badgerOptions().SyncWrites {
		t.Error("fsync always without SyncWrites")
	}
}
