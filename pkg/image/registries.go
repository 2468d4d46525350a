package image

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"
)

// RegistryConfig maps registries to mirrors, with credentials and TLS
// settings per host: the format of k3s's registries.yaml
// (/etc/rancher/k3s/registries.yaml):
//
//	mirrors:
//	  docker.io:
//	    endpoint: ["http://127.0.0.1:5000"]
//	    rewrite:
//	      "^library/(.*)": "mirror/$1"
//	  "*":                       # every registry without an entry of its own
//	    endpoint: ["https://mirror.example.com"]
//	configs:
//	  "127.0.0.1:5000":          # a mirror's (or a registry's) host[:port]
//	    auth: {username: u, password: p}   # or auth: base64(u:p), identitytoken
//	    tls: {insecure_skip_verify: false, ca_file: ..., cert_file: ..., key_file: ...}
//
// A pull of an image of registry R tries R's mirror endpoints in order
// (rewrites apply to them, not to R itself), then R itself, as containerd
// does with k3s's generated hosts.toml: an endpoint that answers "not
// found" or fails passes the pull on to the next; the error reported is
// the first one that is not "not found". An endpoint URL "http://..." is
// reached over plain HTTP, "https://..." over TLS; without a scheme, TLS,
// except on loopback hosts (plain HTTP, as containerd reaches
// localhost). Registries themselves are reached over TLS except loopback
// ones and those of PullOptions.Insecure.
type RegistryConfig struct {
	Mirrors map[string]Mirror             `json:"mirrors,omitempty"`
	Configs map[string]RegistryHostConfig `json:"configs,omitempty"`

	// DisableDefaultEndpoint: a registry with mirrors is reached through
	// them only, never itself (k3s's --disable-default-registry-endpoint;
	// not part of the file).
	DisableDefaultEndpoint bool `json:"-"`

	// compiled by LoadRegistryConfig / ParseRegistryConfig
	mirrors    map[string]*compiledMirror
	transports sync.Map // host → http.RoundTripper
}

// Mirror is one registry's list of mirror endpoints.
type Mirror struct {
	// Endpoints: "http://host:port", "https://host", "host:port".
	Endpoints []string `json:"endpoint,omitempty"`
	// Rewrites: regexp on the repository path → replacement ($1 ...),
	// applied when pulling from this registry's mirrors; the first
	// matching pattern (in sorted order) wins.
	Rewrites map[string]string `json:"rewrite,omitempty"`
}

// RegistryHostConfig is the auth and TLS of one host.
type RegistryHostConfig struct {
	Auth *RegistryAuthConfig `json:"auth,omitempty"`
	TLS  *RegistryTLSConfig  `json:"tls,omitempty"`
}

// RegistryAuthConfig are credentials for one host.
type RegistryAuthConfig struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Auth is base64("user:password").
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// RegistryTLSConfig is the TLS client setup for one host.
type RegistryTLSConfig struct {
	CAFile             string `json:"ca_file,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

type compiledMirror struct {
	endpoints []endpoint
	rewrites  []rewrite
}

type endpoint struct {
	host   string // host[:port]
	scheme string // "http" or "https"
}

type rewrite struct {
	re   *regexp.Regexp
	repl string
}

// LoadRegistryConfig reads a registries.yaml (k3s's format). An empty
// path gives an empty configuration (every registry reached directly).
func LoadRegistryConfig(path string) (*RegistryConfig, error) {
	if path == "" {
		return ParseRegistryConfig(nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	c, err := ParseRegistryConfig(data)
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", path, err)
	}
	return c, nil
}

// ParseRegistryConfig parses registries.yaml content.
func ParseRegistryConfig(data []byte) (*RegistryConfig, error) {
	c := &RegistryConfig{}
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := yaml.Unmarshal(data, c); err != nil {
			return nil, err
		}
	}
	c.mirrors = map[string]*compiledMirror{}
	var regs []string
	for reg := range c.Mirrors {
		regs = append(regs, reg)
	}
	sort.Strings(regs)
	for _, reg := range regs {
		m := c.Mirrors[reg]
		if _, taken := c.mirrors[canonicalRegistry(reg)]; taken && reg != canonicalRegistry(reg) {
			continue // "docker.io" wins over Docker Hub's other names
		}
		cm := &compiledMirror{}
		for _, e := range m.Endpoints {
			ep, err := parseEndpoint(e)
			if err != nil {
				return nil, fmt.Errorf("mirrors[%q]: %w", reg, err)
			}
			cm.endpoints = append(cm.endpoints, ep)
		}
		var pats []string
		for p := range m.Rewrites {
			pats = append(pats, p)
		}
		sort.Strings(pats)
		for _, p := range pats {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("mirrors[%q].rewrite %q: %w", reg, p, err)
			}
			cm.rewrites = append(cm.rewrites, rewrite{re: re, repl: m.Rewrites[p]})
		}
		c.mirrors[canonicalRegistry(reg)] = cm
	}
	for host, hc := range c.Configs {
		if t := hc.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
			return nil, fmt.Errorf("configs[%q].tls: cert_file and key_file go together", host)
		}
	}
	return c, nil
}

func parseEndpoint(s string) (endpoint, error) {
	raw := s
	scheme := ""
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, s = strings.ToLower(s[:i]), s[i+3:]
		if scheme != "http" && scheme != "https" {
			return endpoint{}, fmt.Errorf("endpoint %q: scheme must be http or https", raw)
		}
	}
	host, path, _ := strings.Cut(s, "/")
	if path = strings.Trim(path, "/"); path != "" && path != "v2" {
		return endpoint{}, fmt.Errorf("endpoint %q: a path other than /v2 is not supported", raw)
	}
	if u, err := url.Parse("//" + host); err != nil || u.Host != host || host == "" {
		return endpoint{}, fmt.Errorf("endpoint %q: invalid host", raw)
	}
	if scheme == "" {
		scheme = "https"
		if isLoopback(host) {
			scheme = "http"
		}
	}
	return endpoint{host: host, scheme: scheme}, nil
}

// canonicalRegistry names Docker Hub "docker.io", however it is written.
func canonicalRegistry(host string) string {
	switch host {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return host
}

func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// mirrorOf is the mirror entry of a registry (its own, else "*").
func (c *RegistryConfig) mirrorOf(registry string) *compiledMirror {
	if c == nil {
		return nil
	}
	if m, ok := c.mirrors[canonicalRegistry(registry)]; ok {
		return m
	}
	return c.mirrors["*"]
}

// hostConfig is the configs entry of a host (for Docker Hub, of any of
// its names), else the "*" entry.
func (c *RegistryConfig) hostConfig(host string) (RegistryHostConfig, bool) {
	if c == nil {
		return RegistryHostConfig{}, false
	}
	if hc, ok := c.Configs[host]; ok {
		return hc, true
	}
	if canonicalRegistry(host) == "docker.io" {
		for _, alias := range []string{"docker.io", "registry-1.docker.io", "index.docker.io"} {
			if hc, ok := c.Configs[alias]; ok {
				return hc, true
			}
		}
	}
	hc, ok := c.Configs["*"]
	return hc, ok
}

// rewriteRepo applies the first matching rewrite.
func (m *compiledMirror) rewriteRepo(repo string) string {
	for _, r := range m.rewrites {
		if r.re.MatchString(repo) {
			return r.re.ReplaceAllString(repo, r.repl)
		}
	}
	return repo
}

// transport is the round tripper for a host: its TLS settings, and every
// request to the host made over scheme (go-containerregistry would try
// https and http both on some hosts; containerd uses one).
func (c *RegistryConfig) transport(host, scheme string) (http.RoundTripper, error) {
	key := scheme + "://" + host
	if c != nil {
		if t, ok := c.transports.Load(key); ok {
			return t.(http.RoundTripper), nil
		}
	}
	base := remote.DefaultTransport.(*http.Transport).Clone()
	if hc, ok := c.hostConfig(host); ok && hc.TLS != nil {
		tc := &tls.Config{InsecureSkipVerify: hc.TLS.InsecureSkipVerify}
		if hc.TLS.CAFile != "" {
			pem, err := os.ReadFile(hc.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: ca_file: %w", host, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: ca_file %s has no certificate", host, hc.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if hc.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(hc.TLS.CertFile, hc.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: client certificate: %w", host, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		base.TLSClientConfig = tc
	}
	var t http.RoundTripper = &schemeTransport{base: base, host: host, scheme: scheme}
	if c != nil {
		c.transports.Store(key, t)
	}
	return t, nil
}

// schemeTransport sends every request for host over scheme.
type schemeTransport struct {
	base   http.RoundTripper
	host   string
	scheme string
}

func (t *schemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == t.host && req.URL.Scheme != t.scheme {
		r2 := req.Clone(req.Context())
		r2.URL.Scheme = t.scheme
		req = r2
	}
	return t.base.RoundTrip(req)
}

// SetRegistryConfig makes every later Pull of the store use c (nil: none).
func (s *Store) SetRegistryConfig(c *RegistryConfig) {
	s.registries.Store(c)
}

// RegistryConfig is the configuration SetRegistryConfig set, or nil.
func (s *Store) RegistryConfig() *RegistryConfig {
	return s.registries.Load()
}
