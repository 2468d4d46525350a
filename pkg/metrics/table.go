package metrics

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// toTable renders metrics as metrics-server does for `kubectl get`:
// columns Name, one per resource (cpu, memory), Window; the rows carry
// the object's metadata (includeObject Metadata, the default), the whole
// object (Object) or nothing (None).
func toTable(obj runtime.Object, includeObject string) (*metav1.Table, error) {
	type row struct {
		meta   metav1.ObjectMeta
		usage  corev1.ResourceList
		window metav1.Duration
		obj    runtime.Object
	}
	var rows []row
	t := &metav1.Table{}
	switch o := obj.(type) {
	case *metricsv1beta1.NodeMetrics:
		rows = append(rows, row{o.ObjectMeta, o.Usage, o.Window, o})
	case *metricsv1beta1.NodeMetricsList:
		t.ResourceVersion, t.Continue = o.ResourceVersion, o.Continue
		for i := range o.Items {
			n := &o.Items[i]
			rows = append(rows, row{n.ObjectMeta, n.Usage, n.Window, n})
		}
	case *metricsv1beta1.PodMetrics:
		rows = append(rows, row{o.ObjectMeta, podUsage(o), o.Window, o})
	case *metricsv1beta1.PodMetricsList:
		t.ResourceVersion, t.Continue = o.ResourceVersion, o.Continue
		for i := range o.Items {
			p := &o.Items[i]
			rows = append(rows, row{p.ObjectMeta, podUsage(p), p.Window, p})
		}
	default:
		return nil, fmt.Errorf("no table for %T", obj)
	}
	var include metav1.IncludeObjectPolicy
	switch includeObject {
	case "", string(metav1.IncludeMetadata):
		include = metav1.IncludeMetadata
	case string(metav1.IncludeObject), string(metav1.IncludeNone):
		include = metav1.IncludeObjectPolicy(includeObject)
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("includeObject: unsupported value %q", includeObject))
	}

	var names []string
	for i, r := range rows {
		if i == 0 {
			for k := range r.usage {
				names = append(names, string(k))
			}
			sort.Strings(names)
			t.ColumnDefinitions = []metav1.TableColumnDefinition{{Name: "Name", Type: "string", Format: "name", Description: "Name of the resource"}}
			for _, n := range names {
				t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: n, Type: "string", Format: "quantity"})
			}
			t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Window", Type: "string", Format: "duration"})
		}
		cells := []any{r.meta.Name}
		for _, n := range names {
			q := r.usage[corev1.ResourceName(n)]
			cells = append(cells, q.String())
		}
		cells = append(cells, r.window.Duration.String())
		tr := metav1.TableRow{Cells: cells}
		switch include {
		case metav1.IncludeMetadata:
			tr.Object.Object = &metav1.PartialObjectMetadata{
				TypeMeta:   metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: "PartialObjectMetadata"},
				ObjectMeta: r.meta,
			}
		case metav1.IncludeObject:
			r.obj.GetObjectKind().SetGroupVersionKind(metricsv1beta1.SchemeGroupVersion.WithKind(kindOf(r.obj)))
			tr.Object.Object = r.obj
		}
		t.Rows = append(t.Rows, tr)
	}
	return t, nil
}

func kindOf(obj runtime.Object) string {
	switch obj.(type) {
	case *metricsv1beta1.NodeMetrics:
		return "NodeMetrics"
	case *metricsv1beta1.PodMetrics:
		return "PodMetrics"
	}
	return ""
}

// podUsage is the sum of the pod's container usages.
func podUsage(p *metricsv1beta1.PodMetrics) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for _, c := range p.Containers {
		for k, v := range c.Usage {
			q := sum[k]
			q.Add(v)
			sum[k] = q
		}
	}
	return sum
}
