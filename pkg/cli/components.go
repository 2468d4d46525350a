package cli

import (
	"k1s.dev/k1s/pkg/agent"
	"k1s.dev/k1s/pkg/metrics"
	"k1s.dev/k1s/pkg/server"
)

// ServerComponents are what `k1s server` runs on top of its API: the node
// join service (CSR approval and signing, its RBAC), the controllers and
// scheduler, this machine's node agent with cluster DNS, and the metrics API
// (kubectl top).
func ServerComponents(o *server.Options) []server.Component {
	cs := []server.Component{agent.ServerComponent()}
	if !o.DisableControllers {
		cs = append(cs, controllerComponents()...)
	}
	if !o.DisableAgent {
		cs = append(cs, agent.LocalComponent(), dnsComponent())
	}
	cs = append(cs, metrics.ServerComponent())
	return cs
}
