// Package server owns the client-facing side of a ringcache node: the redcon
// server, the command table, per-connection state, and the routing of each
// command to local execution, a redirect, or an error. Command handlers
// parse their arguments, act on the storage, and return a reply value; one
// place encodes replies and maps errors to Redis's texts.
//
// Keyspace notifications (notify-keyspace-events, notify.go) are
// node-local, as in Redis Cluster: the slot's primary, which runs the
// command (or decides the expiry or eviction), publishes the events to
// its own subscribers. A replica applying a write fires none.
package server
