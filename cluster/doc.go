// Package cluster owns placement and membership: the mapping of keys to
// Redis Cluster hash slots, and (as the cluster grows) the gossip membership,
// the consistent-hash ring of slots to owners and replicas, replication,
// handoff and failure handling.
package cluster
