//go:build smoke

// Run with: K1S_SMOKE=1 go test -tags smoke -run TestSmoke ./pkg/kubelet/hosttest/
package hosttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k1s.dev/k1s/pkg/kubelet"
	"k1s.dev/k1s/pkg/kubelet/runtime"
	"k1s.dev/k1s/pkg/kubelet/runtime/process"
	"k1s.dev/k1s/pkg/pki"
	"k1s.dev/k1s/pkg/server"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// TestSmokeAgainstAPIServer runs the kubelet against k1s's own API server
// (set K1S_SMOKE=1): a pod with an init container runs and reports its
// status, events aggregate, and a graceful delete completes.
func TestSmokeAgainstAPIServer(t *testing.T) {
	if os.Getenv("K1S_SMOKE") == "" {
		t.Skip("set K1S_SMOKE=1")
	}
	dir := t.TempDir()
	exe, _ := os.Executable()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientCh := make(chan kubernetes.Interface, 1)
	restCh := make(chan *rest.Config, 1)
	agent := server.Component{Name: "agent", Run: func(ctx context.Context, env *server.Env) error {
		c := kubernetes.NewForConfigOrDie(env.AdminREST)
		clientCh <- c
		rt, err := process.New(process.Options{RootDir: filepath.Join(dir, "rt"), ShimBinary: exe, ShimEnv: []string{shimEnv + "=1"}, HostIP: env.NodeIP.String()})
		if err != nil {
			return err
		}
		kp, err := env.PKI.EnsureCert(env.CA, pki.CertSpec{Name: "kubelet", CommonName: "system:node:vm",
			Hosts: []string{env.NodeIP.String(), "vm"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(env.CAPEM)
		restCh <- env.AdminREST
		k, err := kubelet.New(kubelet.Dependencies{KubeClient: c, NodeName: "vm", NodeIP: env.NodeIP.String(),
			Runtimes: map[string]runtime.Runtime{"host": rt}, RootDir: filepath.Join(dir, "agent"), ServerAddress: env.NodeIP.String(),
			ServerTLS:      &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool},
			StopPodsOnExit: true, Version: "v0.0.1"})
		if err != nil {
			return err
		}
		return k.Run(ctx)
	}}
	ready := make(chan struct{})
	go func() {
		err := server.Run(ctx, server.Options{DataDir: filepath.Join(dir, "data"), NodeName: "vm", DisableAgent: true, Components: []server.Component{agent}}, ready)
		if err != nil {
			t.Log("server:", err)
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("server not ready")
	}
	c := <-clientCh
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := c.CoreV1().Nodes().Get(ctx, "vm", metav1.GetOptions{})
		if err == nil && len(n.Status.Conditions) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	c.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": "x"}}, metav1.CreateOptions{})
	grace := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "myapp", Namespace: "default"}, Spec: v1.PodSpec{
		NodeName: "vm", TerminationGracePeriodSeconds: &grace,
		InitContainers: []v1.Container{{Name: "init", Image: "busybox:1.28", Command: []string{"sh", "-c", "echo init"}}},
		Containers:     []v1.Container{{Name: "app", Image: "busybox:1.28", Command: []string{"sh", "-c", "echo up; sleep 3600"}}},
	}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		p, err := c.CoreV1().Pods("default").Get(ctx, "myapp", metav1.GetOptions{})
		if err == nil && p.Status.Phase == v1.PodRunning && len(p.Status.Conditions) == 5 {
			ok := true
			for _, cond := range p.Status.Conditions {
				ok = ok && cond.Status == v1.ConditionTrue
			}
			if ok {
				t.Logf("running: %+v", p.Status.ContainerStatuses[0])
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod: %v %+v", err, p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	logs, err := c.CoreV1().Pods("default").GetLogs("myapp", &v1.PodLogOptions{Container: "app"}).DoRaw(ctx)
	if err != nil || string(logs) != "up\n" {
		t.Errorf("logs through the API server: %q %v", logs, err)
	}
	cfg := <-restCh
	req := c.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("myapp").SubResource("exec").
		VersionedParams(&v1.PodExecOptions{Container: "app", Command: []string{"sh", "-c", "echo exec-ok; exit 3"}, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	for _, mk := range []func() (remotecommand.Executor, error){
		func() (remotecommand.Executor, error) { return remotecommand.NewSPDYExecutor(cfg, "POST", req.URL()) },
		func() (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
		},
	} {
		ex, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
		var ee utilexec.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 3 || out.String() != "exec-ok\n" {
			t.Errorf("exec through the API server: %q %q %v", out.String(), errb.String(), err)
		}
	}
	evs, _ := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	var lines []string
	for _, e := range evs.Items {
		lines = append(lines, e.Reason+" "+e.InvolvedObject.FieldPath+" "+e.Message)
	}
	t.Logf("events:\n%s", strings.Join(lines, "\n"))
	if err := c.CoreV1().Pods("default").Delete(ctx, "myapp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		p, err := c.CoreV1().Pods("default").Get(ctx, "myapp", metav1.GetOptions{})
		if err != nil {
			t.Logf("deleted: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not deleted: %+v", p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
