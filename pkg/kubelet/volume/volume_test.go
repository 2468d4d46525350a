package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	testingclock "k8s.io/utils/clock/testing"
)

type src struct{ tokenErr error }

func (src) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	switch name {
	case "kube-root-ca.crt":
		return &v1.ConfigMap{Data: map[string]string{"ca.crt": "CA"}}, nil
	case "cfg":
		return &v1.ConfigMap{Data: map[string]string{"a": "1", "b": "2"}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}
func (src) Secret(_ context.Context, ns, name string) (*v1.Secret, error) {
	if name == "sec" {
		return &v1.Secret{Data: map[string][]byte{"pw": []byte("x")}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}
func (s src) ServiceAccountToken(_ context.Context, pod *v1.Pod, aud string, exp int64) (string, time.Time, error) {
	if s.tokenErr != nil {
		return "", time.Time{}, s.tokenErr
	}
	return "jwt", time.Unix(0, 0).Add(time.Hour), nil
}

func i64(v int64) *int64 { return &v }
func tr() *bool          { b := true; return &b }

func apiAccess() v1.Volume {
	return v1.Volume{Name: "kube-api-access-x", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ServiceAccountToken: &v1.ServiceAccountTokenProjection{ExpirationSeconds: i64(3607), Path: "token"}},
		{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []v1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
		{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
	}}}}
}

func TestSetup(t *testing.T) {
	cases := []struct {
		name    string
		vol     v1.Volume
		src     src
		files   map[string]string
		wantErr string
	}{
		{name: "service account volume", vol: apiAccess(), files: map[string]string{"token": "jwt", "ca.crt": "CA", "namespace": "s05"}},
		{name: "token request unsupported", vol: apiAccess(), src: src{tokenErr: apierrors.NewNotFound(schema.GroupResource{}, "token")},
			files: map[string]string{"token": PlaceholderToken}},
		{name: "token request refused", vol: apiAccess(), src: src{tokenErr: apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts/token"}, "default",
			errors.New("no relationship found between node 'vm' and this object"))},
			wantErr: `MountVolume.SetUp failed for volume "kube-api-access-x" : serviceaccounts/token "default" is forbidden: no relationship found between node 'vm' and this object`},
		{name: "emptyDir", vol: v1.Volume{Name: "shared", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}, files: map[string]string{}},
		{name: "configMap", vol: v1.Volume{Name: "c", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
			files: map[string]string{"a": "1", "b": "2"}},
		{name: "configMap items", vol: v1.Volume{Name: "c", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items: []v1.KeyToPath{{Key: "a", Path: "dir/first"}}}}}, files: map[string]string{"dir/first": "1"}},
		{name: "missing configMap", vol: v1.Volume{Name: "c", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}}},
			wantErr: `MountVolume.SetUp failed for volume "c" : configmap "nope" not found`},
		{name: "optional missing configMap", vol: v1.Volume{Name: "c", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Optional: tr()}}},
			files: map[string]string{}},
		{name: "secret", vol: v1.Volume{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec"}}}, files: map[string]string{"pw": "x"}},
		{name: "downwardAPI labels", vol: v1.Volume{Name: "d", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
			files: map[string]string{"labels": "app=\"myapp\"\ntier=\"web\"", "name": "myapp-pod"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			t.Cleanup(func() { unmountUnder(root) }) // secret and projected volumes are tmpfs
			m := NewManager(root, tc.src, testingclock.NewFakeClock(time.Unix(0, 0)))
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "myapp-pod", Namespace: "s05", UID: "uid",
				Labels: map[string]string{"app": "myapp", "tier": "web"}},
				Spec: v1.PodSpec{Volumes: []v1.Volume{tc.vol}}}
			paths, err := m.Setup(context.Background(), pod, []string{"10.0.0.1"})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := paths[tc.vol.Name]
			if filepath.Dir(filepath.Dir(filepath.Dir(dir))) != filepath.Join(root, "uid") {
				t.Errorf("dir %s not under the pod dir", dir)
			}
			for rel, want := range tc.files {
				got, err := os.ReadFile(filepath.Join(dir, rel))
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (%v), want %q", rel, got, err, want)
				}
			}
			if err := m.Cleanup("uid"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(root, "uid")); !os.IsNotExist(err) {
				t.Errorf("pod dir left: %v", err)
			}
		})
	}
}

func TestMounts(t *testing.T) {
	dir := t.TempDir()
	c := &v1.Container{Name: "c", VolumeMounts: []v1.VolumeMount{
		{Name: "shared", MountPath: "/data", ReadOnly: true},
		{Name: "shared", MountPath: "/sub", SubPath: "x/y"},
	}}
	ms, err := Mounts(c, map[string]string{"shared": dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].HostPath != dir || !ms[0].ReadOnly || ms[1].HostPath != filepath.Join(dir, "x/y") {
		t.Fatalf("%+v", ms)
	}
	if _, err := os.Stat(filepath.Join(dir, "x/y")); err != nil {
		t.Fatal(err)
	}
	if _, err := Mounts(&v1.Container{Name: "c", VolumeMounts: []v1.VolumeMount{{Name: "s", MountPath: "/a", SubPath: "../etc"}}}, map[string]string{"s": dir}); err == nil {
		t.Fatal("escaping subPath accepted")
	}
	if _, err := Mounts(&v1.Container{Name: "c", VolumeMounts: []v1.VolumeMount{{Name: "nope", MountPath: "/a"}}}, nil); err == nil {
		t.Fatal("unknown volume accepted")
	}
}
