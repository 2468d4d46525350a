package agent

import (
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	hash := strings.Repeat("0a", 32)
	tests := []struct {
		name, in string
		want     Token
		wantErr  string
	}{
		{name: "bare secret", in: "c0ffee", want: Token{Secret: "c0ffee"}},
		{name: "bare secret with newline from a file", in: "c0ffee\n", want: Token{Secret: "c0ffee"}},
		{name: "full token", in: "K10" + hash + "::c0ffee", want: Token{CAHash: hash, Secret: "c0ffee"}},
		{name: "hash in upper case", in: "K10" + strings.ToUpper(hash) + "::c0ffee", want: Token{CAHash: hash, Secret: "c0ffee"}},
		{name: "K10 without separator is a bare secret", in: "K10abc", want: Token{Secret: "K10abc"}},
		{name: "empty", in: "  ", wantErr: "token is empty"},
		{name: "short hash", in: "K10abcd::c0ffee", wantErr: "is not a SHA-256 hash"},
		{name: "non-hex hash", in: "K10" + strings.Repeat("zz", 32) + "::c0ffee", wantErr: "is not a SHA-256 hash"},
		{name: "empty secret", in: "K10" + hash + "::", wantErr: "secret after :: is empty"},
		{name: "comma would break tokens.csv", in: "a,b", wantErr: "whitespace or commas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if back, _ := ParseToken(got.String()); back != got {
				t.Errorf("String() does not round-trip: %q", got.String())
			}
		})
	}
	if got := FullToken(hash, "s"); got != "K10"+hash+"::s" {
		t.Errorf("FullToken: %q", got)
	}
}
