package cli

import "k1s.dev/k1s/pkg/server"

func controllerComponents() []server.Component { return nil }
