package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/informers"
	certificatesinformers "k8s.io/client-go/informers/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller/certificates/approver"
	"k8s.io/kubernetes/pkg/controller/certificates/cleaner"
	"k8s.io/kubernetes/pkg/controller/certificates/signer"

	"k1s.dev/k1s/pkg/server"
)

// signingDuration is kube-controller-manager's --cluster-signing-duration.
const signingDuration = 365 * 24 * time.Hour

// ServerComponent is the server side of joining: the RBAC that lets the
// node token's user ask for node certificates, and kube-controller-
// manager's certificate controllers (csrapproving, csrsigning with the
// cluster CA, csrcleaner) plus k1s's approver of kubelet serving
// certificates. It runs until ctx ends.
func ServerComponent() server.Component {
	return server.Component{Name: "node join", Run: runJoinService}
}

func runJoinService(ctx context.Context, env *server.Env) error {
	cfg := rest.CopyConfig(env.AdminREST)
	cfg.UserAgent = "certificate-controller"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	caFile := env.PKI.CAFile()
	caKeyFile := filepath.Join(filepath.Dir(caFile), "ca.key")
	if _, err := os.Stat(caKeyFile); err != nil {
		return fmt.Errorf("signing node certificates needs the CA key: %w", err)
	}

	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := ensureJoinPolicy(ctx, client)
		if err == nil {
			break
		}
		klog.InfoS("Setting up the node join policy failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}

	factory := informers.NewSharedInformerFactory(client, 0)
	csrs := factory.Certificates().V1().CertificateSigningRequests()
	type runner interface{ Run(context.Context, int) }
	runners := []runner{
		approver.NewCSRApprovingController(ctx, client, csrs),
		newServingApprover(ctx, client, csrs),
		cleaner.NewCSRCleanerController(client.CertificatesV1().CertificateSigningRequests(), csrs),
	}
	for _, newSigner := range []func(context.Context, kubernetes.Interface, certificatesinformers.CertificateSigningRequestInformer, string, string, time.Duration) (*signer.CSRSigningController, error){
		signer.NewKubeletServingCSRSigningController,
		signer.NewKubeletClientCSRSigningController,
		signer.NewKubeAPIServerClientCSRSigningController,
		signer.NewLegacyUnknownCSRSigningController,
	} {
		s, err := newSigner(ctx, client, csrs, caFile, caKeyFile, signingDuration)
		if err != nil {
			return err
		}
		runners = append(runners, s)
	}
	factory.Start(ctx.Done())
	for _, r := range runners {
		go r.Run(ctx, 1)
	}
	<-ctx.Done()
	factory.Shutdown()
	return nil
}
