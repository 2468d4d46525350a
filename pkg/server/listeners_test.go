package server

import (
	"errors"
	"io"
	"net"
	"testing"
)

func TestMultiListener(t *testing.T) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMultiListener(a, b)
	if m.Addr().String() != a.Addr().String() {
		t.Errorf("Addr %s, want the first listener's %s", m.Addr(), a.Addr())
	}
	go func() {
		for {
			c, err := m.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hi")
			c.Close()
		}
	}()
	for _, l := range []net.Listener{a, b} {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != "hi" {
			t.Errorf("through %s: %q", l.Addr(), got)
		}
	}
	m.Close()
	if _, err := m.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := net.Dial("tcp", b.Addr().String()); err == nil {
		t.Error("second listener still open after Close")
	}
}

func TestWithNodeAddressKeepsNonLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := withNodeAddress(l, net.ParseIP("127.0.0.2")); got != l {
		t.Error("a loopback node address must not add a listener")
	}
	if got := withNodeAddress(l, nil); got != l {
		t.Error("no node address must not add a listener")
	}
}
