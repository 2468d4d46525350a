package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHello(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "healthy")
	var log bytes.Buffer
	at := time.Date(2026, 11, 26, 16, 1, 52, 0, time.UTC)
	srv := httptest.NewServer(helloHandler("readiness-rc-dpnhd", ready, &log, func() time.Time { return at }))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path      string
		fileThere bool
		code      int
		body      string
	}{
		{"/", false, 200, "Hello World! I'm  readiness-rc-dpnhd \n"},
		{"/anything/else", false, 200, "Hello World! I'm  readiness-rc-dpnhd \n"},
		{"/readiness", false, 500, "Im not ready I'm  readiness-rc-dpnhd \n"},
		{"/readiness", true, 200, "Im ready I'm  readiness-rc-dpnhd \n"},
	}
	for _, tc := range tests {
		os.Remove(ready)
		if tc.fileThere {
			os.WriteFile(ready, nil, 0o644)
		}
		if code, body := get(tc.path); code != tc.code || body != tc.body {
			t.Errorf("GET %s (file %v) = %d %q, want %d %q", tc.path, tc.fileThere, code, body, tc.code, tc.body)
		}
	}
	want := strings.Repeat("[Thu Nov 26 2026 16:01:52 GMT+0000 (Coordinated Universal Time)] readiness-rc-dpnhd\n", len(tests))
	if log.String() != want {
		t.Errorf("log = %q, want %q", log.String(), want)
	}
}
