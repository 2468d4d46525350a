package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
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
	// Auth candidates for the image's own registry; the first whose Server
	// matches is used, else the registry config's credentials for the
	// host, else the default keychain (~/.docker/config.json).
	Auth []Auth
	// Insecure registries ("host:port") are reached over plain HTTP.
	// localhost / 127.0.0.1 / ::1 always are.
	Insecure []string
}

// PullError is a failed pull, worded as containerd's CRI plugin words it
// (the kubelet shows it in the Failed event and the waiting message):
//
//	failed to pull and unpack image "<ref>": failed to resolve reference "<ref>": failed to do request: Head "<url>": dial tcp ...: connect: connection refused
//	rpc error: code = NotFound desc = failed to pull and unpack image "<ref>": failed to resolve reference "<ref>": <ref>: not found
//
// errors.Is(err, ErrNotFound) holds when no endpoint had the image.
type PullError struct {
	// Ref is the normalised reference.
	Ref string
	// NotFound: every endpoint answered "not found".
	NotFound bool
	// Reason follows `failed to pull and unpack image "<ref>": `.
	Reason string
	err    error
}

func (e *PullError) Error() string {
	msg := fmt.Sprintf("failed to pull and unpack image %q: %s", e.Ref, e.Reason)
	if e.NotFound {
		return "rpc error: code = NotFound desc = " + msg
	}
	return msg
}

func (e *PullError) Unwrap() error {
	if e.NotFound {
		return ErrNotFound
	}
	return e.err
}

// pullSource is one place an image can be pulled from: a mirror endpoint
// (with the repository rewritten) or the registry itself.
type pullSource struct {
	ep     endpoint
	repo   string
	mirror bool
}

// Pull fetches ref (resolved to the node's platform when it is an index)
// into the store, through the registry mirrors of SetRegistryConfig.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	named, _ := reference.ParseNormalizedNamed(norm)
	host, repo := reference.Domain(named), reference.Path(named)
	var suffix string
	switch n := named.(type) {
	case reference.Digested:
		suffix = "@" + n.Digest().String()
	case reference.Tagged:
		suffix = ":" + n.Tag()
	}
	cfg := s.RegistryConfig()
	var sources []pullSource
	seen := map[string]bool{}
	add := func(src pullSource) {
		k := src.ep.scheme + "://" + src.ep.host + "/" + src.repo
		if !seen[k] {
			seen[k] = true
			sources = append(sources, src)
		}
	}
	m := cfg.mirrorOf(host)
	if m != nil {
		for _, ep := range m.endpoints {
			add(pullSource{ep: ep, repo: m.rewriteRepo(repo), mirror: true})
		}
	}
	if m == nil || len(m.endpoints) == 0 || !cfg.DisableDefaultEndpoint {
		scheme := "https"
		if isLoopback(host) || contains(opts.Insecure, host) {
			scheme = "http"
		}
		add(pullSource{ep: endpoint{host: host, scheme: scheme}, repo: repo})
	}

	// containerd's resolver: "not found" passes on to the next endpoint;
	// the error reported is the first other one.
	var first error
	for _, src := range sources {
		img, err := s.pullFrom(ctx, cfg, src, named, norm, suffix, opts)
		if err == nil {
			return img, nil
		}
		var pe *PullError
		if errors.As(err, &pe) && pe.NotFound {
			continue
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = &PullError{Ref: norm, NotFound: true,
			Reason: fmt.Sprintf("failed to resolve reference %q: %s: not found", norm, norm)}
	}
	return nil, first
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// pullFrom pulls from one source.
func (s *Store) pullFrom(ctx context.Context, cfg *RegistryConfig, src pullSource, named reference.Named, norm, suffix string, opts PullOptions) (*Image, error) {
	regHost := src.ep.host
	if !src.mirror && regHost == "docker.io" {
		regHost = "registry-1.docker.io" // as containerd reaches Docker Hub
	}
	r, err := name.ParseReference(regHost+"/"+src.repo+suffix, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	t, err := cfg.transport(regHost, src.ep.scheme)
	if err != nil {
		return nil, &PullError{Ref: norm, Reason: err.Error(), err: err}
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(NodePlatform()), remote.WithTransport(t)}
	if a := s.pickCredentials(cfg, src, opts); a != nil {
		ropts = append(ropts, remote.WithAuth(authn.FromConfig(*a)))
	} else {
		keyFor := r.Context().Registry
		if regHost == "registry-1.docker.io" {
			keyFor, _ = name.NewRegistry(name.DefaultRegistry) // docker's config knows Docker Hub as index.docker.io
		}
		auth, err := authn.DefaultKeychain.Resolve(keyFor)
		if err != nil {
			auth = authn.Anonymous
		}
		ropts = append(ropts, remote.WithAuth(auth))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, resolveError(err, norm, src, suffix)
	}
	img, err := desc.Image() // an index resolves to the platform's image
	if err != nil {
		return nil, &PullError{Ref: norm, Reason: err.Error(), err: err}
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, &PullError{Ref: norm, Reason: err.Error(), err: err}
	}
	var tags []string
	if _, ok := named.(reference.Tagged); ok || !strings.Contains(norm, "@") {
		tags = append(tags, norm)
	}
	// The repo digest is the digest the reference resolved to (the index's
	// for multi-platform images, as containerd records it), under the
	// image's own name whatever mirror served it.
	digests := []string{named.Name() + "@" + desc.Digest.String()}
	if digest != desc.Digest {
		digests = append(digests, named.Name()+"@"+digest.String())
	}
	rec, err := s.storeImage(img, tags, digests)
	if err != nil {
		return nil, &PullError{Ref: norm, Reason: err.Error(), err: err}
	}
	return rec, nil
}

// pickCredentials: for the registry itself, the pod's pull secrets, then
// the config's; for a mirror, the config's for the mirror's host.
func (s *Store) pickCredentials(cfg *RegistryConfig, src pullSource, opts PullOptions) *authn.AuthConfig {
	if !src.mirror {
		if a := pickAuth(opts.Auth, src.ep.host); a != nil {
			return &authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken}
		}
	}
	if hc, ok := cfg.hostConfig(src.ep.host); ok && hc.Auth != nil {
		a := hc.Auth
		return &authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken}
	}
	return nil
}

// resolveError words a failed manifest fetch as containerd's resolver.
func resolveError(err error, norm string, src pullSource, suffix string) error {
	host := src.ep.host
	if !src.mirror && host == "docker.io" {
		host = "registry-1.docker.io"
	}
	kind := "manifests"
	u := fmt.Sprintf("%s://%s/v2/%s/%s/%s", src.ep.scheme, host, src.repo, kind, strings.TrimLeft(suffix, ":@"))
	resolve := fmt.Sprintf("failed to resolve reference %q: ", norm)
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == 404 || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode) {
			return &PullError{Ref: norm, NotFound: true, Reason: resolve + norm + ": not found", err: err}
		}
		if terr.StatusCode == 401 || terr.StatusCode == 403 {
			return &PullError{Ref: norm, err: err, Reason: resolve +
				"pull access denied, repository does not exist or may require authorization: " + terr.Error()}
		}
		return &PullError{Ref: norm, err: err, Reason: fmt.Sprintf("%sunexpected status from HEAD request to %s: %d %s",
			resolve, u, terr.StatusCode, http.StatusText(terr.StatusCode))}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return &PullError{Ref: norm, err: err, Reason: fmt.Sprintf("%sfailed to do request: Head %q: %v", resolve, u, opErr)}
	}
	return &PullError{Ref: norm, err: err, Reason: resolve + err.Error()}
}

func hasCode(e *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range e.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
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
