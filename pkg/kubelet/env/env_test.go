package env

import (
	"context"
	"strings"
	"testing"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type fakeSource struct{}

func (fakeSource) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	if name == "cfg" {
		return &v1.ConfigMap{Data: map[string]string{"color": "blue", "size": "L"}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (fakeSource) Secret(_ context.Context, ns, name string) (*v1.Secret, error) {
	if name == "sec" {
		return &v1.Secret{Data: map[string][]byte{"password": []byte("s3cret")}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (fakeSource) Services() ([]*v1.Service, error) {
	return []*v1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []v1.ServicePort{{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "my-svc", Namespace: "ns"},
			Spec: v1.ServiceSpec{ClusterIP: "10.96.0.20", Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "ns"}, Spec: v1.ServiceSpec{ClusterIP: "None"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "elsewhere"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.0.30"}},
	}, nil
}

func basePod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", UID: "uid-1",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "hi"}},
		Spec: v1.PodSpec{NodeName: "vm", ServiceAccountName: "default"},
	}
}

func tr() *bool { b := true; return &b }
func fl() *bool { b := false; return &b }

func TestMake(t *testing.T) {
	cases := []struct {
		name      string
		container v1.Container
		links     *bool
		want      map[string]string
		absent    []string
		wantErr   string
	}{
		{
			name: "values, expansion and field refs",
			container: v1.Container{Name: "c", Env: []v1.EnvVar{
				{Name: "A", Value: "one"},
				{Name: "B", Value: "$(A)-two-$(MISSING)-$$(A)"},
				{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "POD_NS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				{Name: "POD_UID", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
				{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
				{Name: "NOTE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations['note']"}}},
				{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				{Name: "SA", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
				{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "POD_IPS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
				{Name: "HOST_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			}},
			want: map[string]string{"A": "one", "B": "one-two-$(MISSING)-$(A)", "POD_NAME": "web-1", "POD_NS": "ns",
				"POD_UID": "uid-1", "APP": "web", "NOTE": "hi", "NODE": "vm", "SA": "default",
				"POD_IP": "10.1.0.5", "POD_IPS": "10.1.0.5", "HOST_IP": "192.0.2.2", "HOSTNAME": "web-1"},
		},
		{
			name: "resource field refs default to node allocatable",
			container: v1.Container{Name: "c",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}},
				Env: []v1.EnvVar{
					{Name: "MEM_REQ", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "requests.memory", Divisor: resource.MustParse("1Mi")}}},
					{Name: "CPU_LIM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}}},
				}},
			want: map[string]string{"MEM_REQ": "64", "CPU_LIM": "2"},
		},
		{
			name: "configmap and secret keys, envFrom with prefix",
			container: v1.Container{Name: "c",
				EnvFrom: []v1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
				Env: []v1.EnvVar{
					{Name: "COLOR", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
					{Name: "PASS", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
					{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: tr()}}},
					{Name: "MIXED", Value: "$(CFG_size)"},
				}},
			want:   map[string]string{"CFG_color": "blue", "CFG_size": "L", "COLOR": "blue", "PASS": "s3cret", "MIXED": "L"},
			absent: []string{"OPT"},
		},
		{
			name: "missing configmap",
			container: v1.Container{Name: "c", Env: []v1.EnvVar{
				{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}},
			wantErr: `configmap "nope" not found`,
		},
		{
			name: "missing key",
			container: v1.Container{Name: "c", Env: []v1.EnvVar{
				{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "k"}}}}},
			wantErr: `couldn't find key k in ConfigMap ns/cfg`,
		},
		{
			name: "missing secret",
			container: v1.Container{Name: "c", Env: []v1.EnvVar{
				{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}},
			wantErr: `secret "nope" not found`,
		},
		{
			name:      "service links",
			container: v1.Container{Name: "c"},
			want: map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
				"KUBERNETES_PORT": "tcp://10.96.0.1:443", "MY_SVC_SERVICE_HOST": "10.96.0.20", "MY_SVC_SERVICE_PORT": "80", "MY_SVC_PORT_80_TCP_ADDR": "10.96.0.20"},
			absent: []string{"OTHER_SERVICE_HOST", "HEADLESS_SERVICE_HOST"},
		},
		{
			name:      "service links disabled keeps kubernetes",
			container: v1.Container{Name: "c"},
			links:     fl(),
			want:      map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"},
			absent:    []string{"MY_SVC_SERVICE_HOST"},
		},
		{
			name:      "explicit env wins over services and hostname",
			container: v1.Container{Name: "c", Env: []v1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: "x"}, {Name: "HOSTNAME", Value: "h"}}},
			want:      map[string]string{"KUBERNETES_SERVICE_HOST": "x", "HOSTNAME": "h"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := basePod()
			p.Spec.EnableServiceLinks = tc.links
			p.Spec.Containers = []v1.Container{tc.container}
			got, err := Make(context.Background(), fakeSource{}, Input{Pod: p, Container: &p.Spec.Containers[0],
				PodIPs: []string{"10.1.0.5"}, HostIPs: []string{"192.0.2.2"},
				NodeAllocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("4Gi")}})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, kv := range got {
				if _, dup := m[kv.Key]; dup {
					t.Errorf("duplicate %s", kv.Key)
				}
				m[kv.Key] = kv.Value
			}
			for k, v := range tc.want {
				if m[k] != v {
					t.Errorf("%s=%q, want %q", k, m[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := m[k]; ok {
					t.Errorf("%s set", k)
				}
			}
		})
	}
}

func TestExpandCommandAndArgs(t *testing.T) {
	c := &v1.Container{Command: []string{"sh", "-c", "echo $(MSG)"}, Args: []string{"$(N)", "$$(N)", "$(NONE)"}}
	cmd, args := ExpandCommandAndArgs(c, []runtime.KeyValue{{Key: "MSG", Value: "hello"}, {Key: "N", Value: "3"}})
	if strings.Join(cmd, "|") != "sh|-c|echo hello" || strings.Join(args, "|") != "3|$(N)|$(NONE)" {
		t.Fatalf("%q %q", cmd, args)
	}
}
