package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func TestParallel(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		n       int
		workers int
		failAt  int // -1: none
	}{
		{"sequential", 50, 1, -1},
		{"16 workers", 100, 16, -1},
		{"more workers than work", 3, 16, -1},
		{"error stops", 40, 4, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			clients := make([]kubernetes.Interface, tt.workers)
			for i := range clients {
				clients[i] = c
			}
			wall, lat, err := parallel(tt.n, clients, func(c kubernetes.Interface, i int) error {
				if i == tt.failAt {
					return errors.New("boom")
				}
				_, err := c.CoreV1().ConfigMaps("ns").Create(ctx, configMap(fmt.Sprintf("cm-%05d", i)), metav1.CreateOptions{})
				return err
			})
			if tt.failAt >= 0 {
				if err == nil || err.Error() != "boom" {
					t.Fatalf("err = %v, want boom", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if wall <= 0 || len(lat) != tt.n {
				t.Fatalf("wall %v, %d latencies", wall, len(lat))
			}
			for i, l := range lat {
				if l <= 0 {
					t.Errorf("latency %d not recorded", i)
				}
			}
			l, _ := c.CoreV1().ConfigMaps("ns").List(ctx, metav1.ListOptions{})
			if len(l.Items) != tt.n {
				t.Errorf("%d ConfigMaps, want %d", len(l.Items), tt.n)
			}
		})
	}
}

func TestBenchPodStaysOffRealNodes(t *testing.T) {
	p := benchPod("p")
	if p.Spec.NodeName != noSuchNode || len(p.Spec.Containers) != 1 || p.Spec.Containers[0].Image != "busybox" {
		t.Errorf("pod spec %+v", p.Spec)
	}
}
