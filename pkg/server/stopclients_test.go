package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestStoppableTransport(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	defer close(release)

	stop, stopClients := context.WithCancel(context.Background())
	client := &http.Client{Transport: &stoppableTransport{next: http.DefaultTransport, stop: stop}}

	resp, err := client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}

	// a request running when the server stops its clients ends at once,
	// though its own context (Background) never would.
	errc := make(chan error, 1)
	go func() {
		_, err := client.Get(srv.URL + "/slow")
		errc <- err
	}()
	<-started
	stopClients()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("running request: %v, want context canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("running request not ended by stopClients")
	}

	// new requests fail without reaching the server.
	if _, err := client.Get(srv.URL + "/fast"); !errors.Is(err, errServerStopping) {
		t.Fatalf("request after stop: %v", err)
	}
}
