package image

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Auth for one registry (from imagePullSecrets); Server empty matches
// every registry.
type Auth struct {
	Server   string
	Username string
	Password string
	// Auth is base64("user:password"), as in docker config files.
	Auth          string
	IdentityToken string
}

// PullOptions for Pull.
type PullOptions struct {
	// Auth candidates; the first whose Server matches the registry is used,
	// else the default keychain (~/.docker/config.json).
	Auth []Auth
	// Insecure registries ("host:port") are reached over plain HTTP.
	// localhost / 127.0.0.1 / ::1 always may be.
	Insecure []string
}

// Pull fetches ref (resolved to the node's platform when it is an index)
// into the store.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	named, _ := reference.ParseNormalizedNamed(norm)
	var nopts []name.Option
	host := reference.Domain(named)
	for _, h := range opts.Insecure {
		if h == host {
			nopts = append(nopts, name.Insecure)
		}
	}
	r, err := name.ParseReference(norm, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(NodePlatform())}
	if a := pickAuth(opts.Auth, host); a != nil {
		ropts = append(ropts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{
			Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken,
		})))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", norm, err)
	}
	img, err := desc.Image() // an index resolves to the platform's image
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", norm, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	var tags []string
	if _, ok := named.(reference.Tagged); ok || !strings.Contains(norm, "@") {
		tags = append(tags, norm)
	}
	// The repo digest is the digest the reference resolved to (the index's
	// for multi-platform images, as containerd records it).
	digests := []string{named.Name() + "@" + desc.Digest.String()}
	if digest != desc.Digest {
		digests = append(digests, named.Name()+"@"+digest.String())
	}
	return s.storeImage(img, tags, digests)
}

func pickAuth(auths []Auth, host string) *Auth {
	for i := range auths {
		a := &auths[i]
		srv := strings.TrimPrefix(strings.TrimPrefix(a.Server, "https://"), "http://")
		srv = strings.TrimSuffix(strings.SplitN(srv, "/", 2)[0], "/")
		if srv == "" || srv == host || (host == "docker.io" && (srv == "index.docker.io" || srv == "registry-1.docker.io")) {
			return a
		}
	}
	return nil
}
