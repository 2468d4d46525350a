package server

import (
	"errors"
	"net"
	"strconv"
	"sync"
)

// multiListener accepts on several listeners as one: the API on its bind
// address and, when that is loopback, also on the node's address, which
// the kubernetes Service's endpoint names (pods reach the API through it).
type multiListener struct {
	ls    []net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	errMu sync.Mutex
	err   error
}

func newMultiListener(ls ...net.Listener) *multiListener {
	m := &multiListener{ls: ls, conns: make(chan net.Conn), done: make(chan struct{})}
	for _, l := range ls {
		go m.accept(l)
	}
	return m
}

func (m *multiListener) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.errMu.Lock()
			if m.err == nil {
				m.err = err
			}
			m.errMu.Unlock()
			m.Close()
			return
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		m.errMu.Lock()
		defer m.errMu.Unlock()
		if m.err != nil {
			return nil, m.err
		}
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	m.once.Do(func() {
		close(m.done)
		for _, l := range m.ls {
			l.Close()
		}
	})
	return nil
}

// Addr is the first listener's (the bind address).
func (m *multiListener) Addr() net.Addr { return m.ls[0].Addr() }

// withNodeAddress adds a listener on nodeIP at ln's port when ln is on a
// loopback address and the port is free there; otherwise ln is returned.
func withNodeAddress(ln net.Listener, nodeIP net.IP) net.Listener {
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() || nodeIP == nil || nodeIP.IsLoopback() {
		return ln
	}
	extra, err := net.Listen("tcp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(tcp.Port)))
	if err != nil {
		return ln
	}
	return newMultiListener(ln, extra)
}
