// Package env builds a container's environment as the kubelet does: env
// with values, downward API field and resource references, ConfigMap and
// Secret keys, envFrom with prefixes, $(VAR) expansion, and the service link
// variables (FOO_SERVICE_HOST, ...) of the pod's namespace.
package env

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k1s.dev/k1s/pkg/kubelet/runtime"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kubernetes/pkg/api/v1/resource"
	podshelper "k8s.io/kubernetes/pkg/apis/core/pods"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// Source reads the objects a container's environment refers to.
type Source interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
	// Services lists the services of every namespace.
	Services() ([]*v1.Service, error)
}

// Input is the container and the pod facts its environment may use.
type Input struct {
	Pod       *v1.Pod
	Container *v1.Container
	PodIPs    []string
	HostIPs   []string
	// NodeAllocatable defaults unset limits for resourceFieldRef.
	NodeAllocatable v1.ResourceList
}

// NotFound errors use upstream's singular resource names (configmap "x" not
// found), which is what CreateContainerConfigError shows.
func notFound(kind, name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: kind}, name)
}

// Make returns the container's environment, in a stable order: envFrom
// variables, then env in declaration order (a later definition wins), then
// the service variables not defined otherwise, then HOSTNAME.
func Make(ctx context.Context, src Source, in Input) ([]runtime.KeyValue, error) {
	pod, c := in.Pod, in.Container
	serviceEnv, err := serviceVars(src, pod)
	if err != nil {
		return nil, err
	}
	var (
		order      []string
		vals       = map[string]string{}
		configMaps = map[string]*v1.ConfigMap{}
		secrets    = map[string]*v1.Secret{}
	)
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	getConfigMap := func(name string) (*v1.ConfigMap, error) {
		if cm, ok := configMaps[name]; ok {
			return cm, nil
		}
		cm, err := src.ConfigMap(ctx, pod.Namespace, name)
		if apierrors.IsNotFound(err) {
			return nil, notFound("configmap", name)
		}
		if err != nil {
			return nil, err
		}
		configMaps[name] = cm
		return cm, nil
	}
	getSecret := func(name string) (*v1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := src.Secret(ctx, pod.Namespace, name)
		if apierrors.IsNotFound(err) {
			return nil, notFound("secret", name)
		}
		if err != nil {
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}

	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := getConfigMap(from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, err
			}
			for _, k := range sortedKeys(cm.Data) {
				set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			s, err := getSecret(from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(from.SecretRef.Optional) {
					continue
				}
				return nil, err
			}
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}

	mapping := expansion.MappingFuncFor(vals, serviceEnv)
	for _, e := range c.Env {
		val := e.Value
		switch {
		case val != "":
			val = expansion.Expand(val, mapping)
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			val, err = fieldValue(e.ValueFrom.FieldRef, in)
			if err != nil {
				return nil, err
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			val, err = resourceValue(e.ValueFrom.ResourceFieldRef, in)
			if err != nil {
				return nil, err
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := getConfigMap(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ref.Optional) {
					continue
				}
				return nil, err
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			val = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := getSecret(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ref.Optional) {
					continue
				}
				return nil, err
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			val = string(v)
		}
		set(e.Name, val)
	}

	out := make([]runtime.KeyValue, 0, len(order)+len(serviceEnv)+1)
	for _, k := range order {
		out = append(out, runtime.KeyValue{Key: k, Value: vals[k]})
	}
	for _, k := range sortedKeys(serviceEnv) {
		if _, ok := vals[k]; !ok {
			out = append(out, runtime.KeyValue{Key: k, Value: serviceEnv[k]})
		}
	}
	if _, ok := vals["HOSTNAME"]; !ok {
		out = append(out, runtime.KeyValue{Key: "HOSTNAME", Value: Hostname(pod)})
	}
	return out, nil
}

// Hostname of the pod: spec.hostname or its name, cut to 63 characters.
func Hostname(pod *v1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func optional(b *bool) bool { return b != nil && *b }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// serviceVars: the kubernetes service of the default namespace always, and
// the services of the pod's namespace when enableServiceLinks (default true).
func serviceVars(src Source, pod *v1.Pod) (map[string]string, error) {
	m := map[string]string{}
	if src == nil {
		return m, nil
	}
	services, err := src.Services()
	if err != nil {
		return nil, fmt.Errorf("failed to list services when setting up env vars")
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	byName := map[string]*v1.Service{}
	for _, s := range services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone {
			continue
		}
		if s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" {
			if _, ok := byName[s.Name]; !ok {
				byName[s.Name] = s
			}
		} else if s.Namespace == pod.Namespace && links {
			byName[s.Name] = s
		}
	}
	list := make([]*v1.Service, 0, len(byName))
	for _, s := range byName {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	for _, e := range envvars.FromServices(list) {
		m[e.Name] = e.Value
	}
	return m, nil
}

func fieldValue(fs *v1.ObjectFieldSelector, in Input) (string, error) {
	version := fs.APIVersion
	if version == "" {
		version = "v1"
	}
	path, _, err := podshelper.ConvertDownwardAPIFieldLabel(version, fs.FieldPath, "")
	if err != nil {
		return "", err
	}
	switch path {
	case "spec.nodeName":
		return in.Pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return in.Pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		if len(in.HostIPs) == 0 {
			return "", fmt.Errorf("host IP unknown")
		}
		return in.HostIPs[0], nil
	case "status.hostIPs":
		return strings.Join(in.HostIPs, ","), nil
	case "status.podIP":
		if len(in.PodIPs) == 0 {
			return "", nil
		}
		return in.PodIPs[0], nil
	case "status.podIPs":
		return strings.Join(in.PodIPs, ","), nil
	}
	return fieldpath.ExtractFieldPathAsString(in.Pod, path)
}

func resourceValue(fs *v1.ResourceFieldSelector, in Input) (string, error) {
	name := fs.ContainerName
	if name == "" {
		name = in.Container.Name
	}
	return resource.ExtractResourceValueByContainerNameAndNodeAllocatable(fs, in.Pod, name, in.NodeAllocatable)
}

// ExpandCommandAndArgs expands $(VAR) references in command and args with
// the container's final environment.
func ExpandCommandAndArgs(c *v1.Container, envs []runtime.KeyValue) (cmd, args []string) {
	m := make(map[string]string, len(envs))
	for _, e := range envs {
		m[e.Key] = e.Value
	}
	mapping := expansion.MappingFuncFor(m)
	for _, s := range c.Command {
		cmd = append(cmd, expansion.Expand(s, mapping))
	}
	for _, s := range c.Args {
		args = append(args, expansion.Expand(s, mapping))
	}
	return cmd, args
}
