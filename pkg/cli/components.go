package cli

import "k1s.dev/k1s/pkg/server"

// ServerComponents are what `k1s server` runs on top of its API.
func ServerComponents() []server.Component {
	return nil
}
