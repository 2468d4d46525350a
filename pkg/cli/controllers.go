package cli

import (
	"context"

	"k8s.io/utils/clock"

	"k1s.dev/k1s/pkg/controller/manager"
	"k1s.dev/k1s/pkg/server"
)

func controllerComponents() []server.Component {
	return []server.Component{{Name: "controllers", Run: runControllers}}
}

func runControllers(ctx context.Context, env *server.Env) error {
	return manager.Run(ctx, manager.Config{
		KubeConfig: env.AdminREST,
		Clock:      clock.RealClock{},
		RootCA:     env.CAPEM,
	})
}
