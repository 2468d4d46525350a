package pki

import (
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultContextName names the cluster, user and context of kubeconfigs k1s
// writes, so `kubectl config get-contexts` shows k1s.
const DefaultContextName = "k1s"

// Kubeconfig returns a kubeconfig with one cluster, one user and one
// context, all named name (DefaultContextName when empty), which is also the
// current context. Certificates and key are embedded, so the file stands
// alone.
func Kubeconfig(server string, caPEM, certPEM, keyPEM []byte, name string) *clientcmdapi.Config {
	if name == "" {
		name = DefaultContextName
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return cfg
}

// WriteKubeconfig writes Kubeconfig(...) to path with mode 0600, replacing
// the file atomically.
func WriteKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte, contextName string) error {
	data, err := clientcmd.Write(*Kubeconfig(server, caPEM, certPEM, keyPEM, contextName))
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}
