package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
)

// errServerStopping is what in-process clients get once the server has
// stopped them.
var errServerStopping = errors.New("k1s server is stopping")

// stoppableTransport lets the server end its own components' requests
// when it stops. Some run without a context to cancel (client-go's event
// recorder posts with context.Background) and retry what the stopping API
// server answers (503 "apiserver is shutting down", Retry-After: 1) ten
// times; while one does, the API server's HTTP/2 connection is never idle
// and its shutdown, hence the process's, waited ~10 s more.
type stoppableTransport struct {
	next http.RoundTripper
	stop context.Context // done: fail new requests, cancel running ones
}

func (t *stoppableTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.stop.Err() != nil {
		return nil, errServerStopping
	}
	ctx, cancel := context.WithCancel(req.Context())
	unregister := context.AfterFunc(t.stop, cancel)
	release := func() { unregister(); cancel() }
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// an upgraded connection (its Body is the connection, an
		// io.ReadWriteCloser): left to its user.
		unregister()
		return resp, nil
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// releasingBody releases its request's context when closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
