package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"k1s.dev/k1s/bench/internal/harness"
)

// genTime is every generated entry's time: the images are reproducible.
var genTime = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// layerFile is one generated layer: its uncompressed tar and a gzipped copy.
type layerFile struct {
	tarPath, gzPath string
	diffID          v1.Hash // sha256 of the uncompressed tar
	size            int64   // bytes of the uncompressed tar
	files           int
}

const (
	smallFiles    = 256
	smallFileSize = 16 << 10
	bigFiles      = 4
)

// writeLayers writes n layers of random data, total bytes of file content
// in all (each layer: smallFiles files of 16 KiB and bigFiles files sharing
// the rest), into dir as layer-N.tar and layer-N.tar.gz (gzip BestSpeed:
// random data does not compress, the level only changes the build time).
func writeLayers(dir string, n int, total int64, seed uint64) ([]layerFile, error) {
	if n < 1 {
		n = 1
	}
	per := total / int64(n)
	small := int64(smallFiles * smallFileSize)
	if small > per/2 {
		small = 0
	}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'o', 'c', 'i'})
	var out []layerFile
	for i := 0; i < n; i++ {
		lf := layerFile{tarPath: filepath.Join(dir, fmt.Sprintf("layer-%d.tar", i)), gzPath: filepath.Join(dir, fmt.Sprintf("layer-%d.tar.gz", i))}
		if err := writeLayer(&lf, i, per, small, rng); err != nil {
			return nil, err
		}
		out = append(out, lf)
	}
	return out, nil
}

func writeLayer(lf *layerFile, i int, bytes, small int64, rng io.Reader) error {
	tf, err := os.Create(lf.tarPath)
	if err != nil {
		return err
	}
	defer tf.Close()
	gf, err := os.Create(lf.gzPath)
	if err != nil {
		return err
	}
	defer gf.Close()
	gz, err := gzip.NewWriterLevel(gf, gzip.BestSpeed)
	if err != nil {
		return err
	}
	h := sha256.New()
	cw := &countWriter{}
	tw := tar.NewWriter(io.MultiWriter(tf, gz, h, cw))
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: genTime})
	}
	file := func(name string, size int64) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: genTime}); err != nil {
			return err
		}
		lf.files++
		_, err := io.CopyN(tw, rng, size)
		return err
	}
	top := fmt.Sprintf("data/layer%d", i)
	for _, d := range []string{"data", top} {
		if err := dir(d); err != nil {
			return err
		}
	}
	if small > 0 {
		if err := dir(top + "/small"); err != nil {
			return err
		}
		for j := 0; j < smallFiles; j++ {
			if err := file(fmt.Sprintf("%s/small/f%03d", top, j), smallFileSize); err != nil {
				return err
			}
		}
	}
	rest := bytes - small
	for j := 0; j < bigFiles; j++ {
		size := rest / bigFiles
		if j == bigFiles-1 {
			size = rest - size*(bigFiles-1)
		}
		if err := file(fmt.Sprintf("%s/big%d", top, j), size); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	lf.size = cw.n
	lf.diffID = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if err := tf.Close(); err != nil {
		return err
	}
	return gf.Close()
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func imageConfig(layers []layerFile) *v1.ConfigFile {
	cf := &v1.ConfigFile{
		Architecture: goruntime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: genTime},
		Config:       v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		RootFS:       v1.RootFS{Type: "layers"},
	}
	for _, l := range layers {
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, l.diffID)
	}
	return cf
}

// writeDockerSave writes a `docker save` tarball with the layers
// uncompressed (<diffID>/layer.tar), as docker writes it.
func writeDockerSave(path, tag string, layers []layerFile) error {
	cfg, err := json.Marshal(imageConfig(layers))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(sum[:]) + ".json"
	manifest := []tarball.Descriptor{{Config: cfgName, RepoTags: []string{tag}}}
	for _, l := range layers {
		manifest[0].Layers = append(manifest[0].Layers, l.diffID.Hex+"/layer.tar")
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: genTime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(cfgName, cfg); err != nil {
		return err
	}
	for _, l := range layers {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: l.diffID.Hex + "/", Mode: 0o755, ModTime: genTime}); err != nil {
			return err
		}
		if err := addFile(tw, l.diffID.Hex+"/layer.tar", l.tarPath); err != nil {
			return err
		}
	}
	if err := add("manifest.json", mj); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func addFile(tw *tar.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: fi.Size(), ModTime: genTime}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// writeOCIArchive writes an OCI image layout with the gzipped layers
// (as a registry serves them) into layoutDir and tars it at path.
func writeOCIArchive(path, layoutDir, tag string, layers []layerFile) error {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var ls []v1.Layer
	for _, l := range layers {
		layer, err := tarball.LayerFromFile(l.gzPath, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		ls = append(ls, layer)
	}
	img, err := mutate.AppendLayers(img, ls...)
	if err != nil {
		return err
	}
	cf := imageConfig(layers)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		return err
	}
	return tarDir(path, layoutDir)
}

// tarDir writes the contents of dir (relative names) as a tarball.
func tarDir(path, dir string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: genTime})
		}
		return addFile(tw, rel, p)
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// importThroughput builds an image of b.imageLayers layers of random data
// (b.imageMB MB uncompressed) as a docker-save tarball (uncompressed
// layers) and as an OCI layout tarball (gzipped layers), and times `k1s
// image import` of each into a fresh data dir, end to end (process
// start, reading, digest checks, unpacking into the layer store). GNU
// tar extracting the same layer tars is the baseline.
func (b *bench) importThroughput(ctx context.Context) error {
	rows := b.section("import")
	dir := filepath.Join(b.work, "import")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	layers, err := writeLayers(dir, b.imageLayers, int64(b.imageMB)<<20, uint64(os.Getpid()))
	if err != nil {
		return err
	}
	var total int64
	files := 0
	for _, l := range layers {
		total += l.size
		files += l.files
	}
	docker := filepath.Join(dir, "big-docker.tar")
	if err := writeDockerSave(docker, "bench/big:docker", layers); err != nil {
		return err
	}
	oci := filepath.Join(dir, "big-oci.tar")
	if err := writeOCIArchive(oci, filepath.Join(dir, "layout"), "bench/big:oci", layers); err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(dir, "layout"))
	b.log("import image built in %s: %d layers, %s uncompressed, %d files", harness.Ms(time.Since(t0)), len(layers), mb(total), files)
	what := fmt.Sprintf("%d layers of random data, %s uncompressed, %d files", len(layers), mb(total), files)

	// Baseline: GNU tar extracting the layer tars.
	var baseline *harness.Row
	base := filepath.Join(dir, "tar-x")
	if tarBin, err := exec.LookPath("tar"); err == nil {
		if err := os.MkdirAll(base, 0o755); err != nil {
			return err
		}
		syscall.Sync()
		start := time.Now()
		ok := true
		for _, l := range layers {
			if out, err := exec.CommandContext(ctx, tarBin, "-xf", l.tarPath, "-C", base).CombinedOutput(); err != nil {
				b.log("tar -xf %s: %v: %s", l.tarPath, err, out)
				ok = false
				break
			}
		}
		took := time.Since(start)
		os.RemoveAll(base)
		if ok {
			baseline = &harness.Row{Measure: fmt.Sprintf("… baseline: GNU tar -x of the same %d layer tars (same disk, page cache warm)", len(layers)),
				Value: fmt.Sprintf("%s (%s)", mbps(total, took), harness.Ms(took))}
		}
	}
	for _, l := range layers {
		os.Remove(l.tarPath)
		os.Remove(l.gzPath)
	}

	for _, c := range []struct{ label, path, name string }{
		{"docker-save tarball, uncompressed layers", docker, "bench/big:docker"},
		{"OCI layout tarball, gzip layers", oci, "bench/big:oci"},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			return err
		}
		data := filepath.Join(dir, "data-"+filepath.Base(c.path))
		syscall.Sync()
		start := time.Now()
		out, err := exec.CommandContext(ctx, b.binary, "image", "import", "--data-dir", data, "--name", c.name, c.path).CombinedOutput()
		took := time.Since(start)
		label := fmt.Sprintf("image import + unpack (`k1s image import`, end to end), %s (%s, file %s): MB/s of uncompressed layer bytes", c.label, what, mb(fi.Size()))
		if err != nil {
			rows.Add(label, fmt.Sprintf("n/a: %v: %s", err, firstLine(out)), "")
			os.RemoveAll(data)
			continue
		}
		b.log("import %s: %s in %s", c.label, mb(total), harness.Ms(took))
		rows.Add(label, fmt.Sprintf("**%s** (%s)", mbps(total, took), harness.Ms(took)), "")
		os.RemoveAll(data)
		os.Remove(c.path)
	}
	if baseline != nil {
		rows.Rows = append(rows.Rows, *baseline)
	}
	return nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}

func mbps(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MB/s", float64(bytes)/(1<<20)/d.Seconds())
}
