package server

import (
	"errors"
	"fmt"
	"log/slog"
)

// Config is a node's client-facing configuration. cmd/ringcache binds its
// flags onto these fields; DefaultConfig gives what a Redis user expects.
type Config struct {
	Bind            string // address to listen on
	Port            int    // RESP port
	RequirePass     string // password for the default user; empty: no AUTH needed
	MaxClients      int    // connections beyond this are refused
	ProtoMaxBulkLen int64  // largest bulk string a client may send or build
	// Redirects is how a command for a slot held elsewhere is answered:
	// RedirectsAuto (the default), RedirectsMoved or RedirectsForward.
	Redirects string
	// NotifyKeyspaceEvents is notify-keyspace-events: Redis's letters
	// (K, E and the classes g$lshzxetdmn, A for most); empty, the
	// default, sends none (notify.go).
	NotifyKeyspaceEvents string
	// Informational values echoed by CONFIG GET and INFO; the storage
	// itself is configured in cmd/ringcache.
	Dir         string
	AppendFsync string
	InMemory    bool
	// ConfigFile is the config file the node read, if any.
	ConfigFile string
	Logger     *slog.Logger
	// Topology places slots on nodes; nil makes the node a cluster of one.
	Topology Topology
}

// DefaultConfig returns Redis's defaults: 127.0.0.1:6379, 10000 clients,
// 512 MB bulk strings.
func DefaultConfig() Config {
	return Config{
		Bind:            "127.0.0.1",
		Port:            6379,
		MaxClients:      10000,
		ProtoMaxBulkLen: 512 << 20,
		Redirects:       RedirectsAuto,
		Dir:             "./data",
		AppendFsync:     "no",
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("port %d out of range", c.Port)
	case c.MaxClients < 1:
		return errors.New("maxclients must be at least 1")
	case c.ProtoMaxBulkLen < 1024*1024:
		return errors.New("proto-max-bulk-len must be at least 1mb")
	case c.Redirects != "" && c.Redirects != RedirectsAuto && c.Redirects != RedirectsMoved && c.Redirects != RedirectsForward:
		return fmt.Errorf("redirects %q: want auto, moved or forward", c.Redirects)
	}
	if _, ok := parseNotifyFlags(c.NotifyKeyspaceEvents); !ok {
		return fmt.Errorf("notify-keyspace-events %q: %s", c.NotifyKeyspaceEvents, errNotifyClass)
	}
	return nil
}
