package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NodeTokenFile is the file, relative to the data dir, holding the secret
// agents present to join the server.
const NodeTokenFile = "node-token"

// EnsureNodeToken returns the node token kept in dir/node-token, creating
// a random 32-byte hex secret (mode 0600) when the file is absent.
func EnsureNodeToken(dir string) (string, error) {
	path := filepath.Join(dir, NodeTokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(buf)
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// CAHash is the hex SHA-256 of a CA certificate's PEM, which an agent can
// compare with a value given out of band before trusting a downloaded CA
// (k3s puts it in its join token).
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}
