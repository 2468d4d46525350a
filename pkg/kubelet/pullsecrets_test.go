package kubelet

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"

	"k1s.dev/k1s/pkg/kubelet/runtime"
)

func TestRegistryAuths(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *v1.Secret
		want []runtime.RegistryAuth
	}{
		{"dockerconfigjson", &v1.Secret{Type: v1.SecretTypeDockerConfigJson, Data: map[string][]byte{
			v1.DockerConfigJsonKey: []byte(`{"auths":{"reg.example.com":{"username":"u","password":"p"},"b.example.com":{"auth":"dTpw"}}}`)}},
			[]runtime.RegistryAuth{{Server: "b.example.com", Auth: "dTpw"}, {Server: "reg.example.com", Username: "u", Password: "p"}}},
		{"dockercfg", &v1.Secret{Type: v1.SecretTypeDockercfg, Data: map[string][]byte{
			v1.DockerConfigKey: []byte(`{"https://index.docker.io/v1/":{"auth":"dTpw"}}`)}},
			[]runtime.RegistryAuth{{Server: "https://index.docker.io/v1/", Auth: "dTpw"}}},
		{"garbage", &v1.Secret{Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{`)}}, nil},
	} {
		got := registryAuths(tc.s)
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
