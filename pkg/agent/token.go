package agent

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// tokenPrefix marks a join token that carries the CA hash, k3s's format:
// K10<sha256 of the cluster CA certificate, hex>::<secret>.
const tokenPrefix = "K10"

// Token is what an agent presents to join a server.
type Token struct {
	// CAHash is the hex SHA-256 of the cluster CA's PEM (pki.CAHash), empty
	// when the token is a bare secret.
	CAHash string
	// Secret is the bearer token the API server knows (DATA_DIR/node-token).
	Secret string
}

// ParseToken reads a bare secret or a K10<ca-hash>::<secret> token.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("token is empty")
	}
	if !strings.HasPrefix(s, tokenPrefix) || !strings.Contains(s, "::") {
		if strings.ContainsAny(s, " \t\n,") {
			return Token{}, errors.New("token contains whitespace or commas")
		}
		return Token{Secret: s}, nil
	}
	hash, secret, _ := strings.Cut(strings.TrimPrefix(s, tokenPrefix), "::")
	hash = strings.ToLower(hash)
	if b, err := hex.DecodeString(hash); err != nil || len(b) != 32 {
		return Token{}, fmt.Errorf("token: %q is not a SHA-256 hash (64 hex digits)", hash)
	}
	if secret == "" || strings.ContainsAny(secret, " \t\n,") {
		return Token{}, errors.New("token: the secret after :: is empty or contains whitespace or commas")
	}
	return Token{CAHash: hash, Secret: secret}, nil
}

// String is the token in the form ParseToken reads.
func (t Token) String() string {
	if t.CAHash == "" {
		return t.Secret
	}
	return tokenPrefix + t.CAHash + "::" + t.Secret
}

// FullToken is the join token that lets an agent verify the server before
// it sends the secret: K10<CA hash>::<secret>.
func FullToken(caHash, secret string) string {
	return Token{CAHash: caHash, Secret: secret}.String()
}
