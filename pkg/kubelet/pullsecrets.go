package kubelet

import (
	"context"
	"encoding/json"
	"log"
	"sort"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

// dockerConfigEntry is one registry of a docker config file.
type dockerConfigEntry struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// pullAuth is the credentials of the pod's imagePullSecrets
// (kubernetes.io/dockerconfigjson and the older kubernetes.io/dockercfg),
// as the kubelet's keyring reads them. A secret that cannot be read is
// skipped, as upstream does (the pull is tried without it).
func (k *Kubelet) pullAuth(ctx context.Context, pod *v1.Pod) []runtime.RegistryAuth {
	var out []runtime.RegistryAuth
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			log.Printf("kubelet: pod %s/%s: image pull secret %q: %v", pod.Namespace, pod.Name, ref.Name, err)
			continue
		}
		out = append(out, registryAuths(s)...)
	}
	return out
}

func registryAuths(s *v1.Secret) []runtime.RegistryAuth {
	var entries map[string]dockerConfigEntry
	switch {
	case len(s.Data[v1.DockerConfigJsonKey]) > 0:
		var cfg struct {
			Auths map[string]dockerConfigEntry `json:"auths"`
		}
		if json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg) != nil {
			return nil
		}
		entries = cfg.Auths
	case len(s.Data[v1.DockerConfigKey]) > 0:
		if json.Unmarshal(s.Data[v1.DockerConfigKey], &entries) != nil {
			return nil
		}
	}
	servers := make([]string, 0, len(entries))
	for srv := range entries {
		servers = append(servers, srv)
	}
	sort.Strings(servers)
	out := make([]runtime.RegistryAuth, 0, len(servers))
	for _, srv := range servers {
		e := entries[srv]
		out = append(out, runtime.RegistryAuth{Server: srv, Username: e.Username, Password: e.Password, Auth: e.Auth})
	}
	return out
}
