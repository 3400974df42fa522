package server

// watchPlacement reacts to changes of slot ownership for what clients
// hold on to across commands: shard channel subscriptions and tracked
// keys of slots this node no longer serves.
func (s *Server) watchPlacement(changed <-chan struct{}) {
	for {
		select {
		case <-changed:
		case <-s.stopWatch:
			return
		}
		s.dropMovedShardSubscriptions()
		s.invalidateMovedSlots()
	}
}
