// Command ocibuild turns a root filesystem directory into a one-layer container image on an
// empty base and writes it as a `docker save`-style tarball (manifest.json, the config, one
// gzipped layer) that `docker load -i` and `podman load -i` read and `crane push` sends to a
// registry. No daemon, no network: go-containerregistry's empty, mutate and tarball packages.
// scripts/images.sh builds and uses it (docs/images.md).
//
//	ocibuild -rootfs DIR -tag sluice:0.1.0 -o sluice-0.1.0.tar \
//	  -entrypoint /usr/bin/sluice -user 65532:65532 -workdir / \
//	  -env K=V -label K=V -expose 9092/tcp -chown /var/lib/sluice=65532:65532
//
// The layer is reproducible: entries in name order, every time set to -created (default
// SOURCE_DATE_EPOCH, else now), owner root:root unless -chown names the path (or a parent),
// modes (setuid, setgid and sticky bits included) and symbolic links kept as they are in DIR.
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type owner struct{ uid, gid int }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ocibuild:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		rootfs     = flag.String("rootfs", "", "root filesystem directory, the image's only layer (required)")
		tag        = flag.String("tag", "", "image name and tag written into the tarball, e.g. sluice:0.1.0 (required)")
		out        = flag.String("o", "", "output tarball (required)")
		user       = flag.String("user", "", "the user the container runs as, e.g. 65532:65532")
		workdir    = flag.String("workdir", "/", "working directory")
		created    = flag.String("created", "", "creation time, RFC 3339 (default SOURCE_DATE_EPOCH, else now)")
		arch       = flag.String("arch", runtime.GOARCH, "architecture (GOARCH names: amd64, arm64)")
		entrypoint list
		cmd        list
		env        list
		labels     list
		expose     list
		chown      list
	)
	flag.Var(&entrypoint, "entrypoint", "entrypoint, one argument per flag")
	flag.Var(&cmd, "cmd", "default arguments after the entrypoint, one per flag")
	flag.Var(&env, "env", "K=V environment variable (repeatable)")
	flag.Var(&labels, "label", "K=V label (repeatable)")
	flag.Var(&expose, "expose", "exposed port, e.g. 9092/tcp (repeatable)")
	flag.Var(&chown, "chown", "/PATH=UID:GID owner of PATH and what is below it in the layer (repeatable)")
	flag.Parse()
	if *rootfs == "" || *tag == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		return errors.New("-rootfs, -tag and -o are required, and nothing else")
	}

	when, err := creationTime(*created)
	if err != nil {
		return err
	}
	owners := map[string]owner{}
	for _, c := range chown {
		p, ids, ok := strings.Cut(c, "=")
		u, g, ok2 := strings.Cut(ids, ":")
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if !ok || !ok2 || err1 != nil || err2 != nil || !strings.HasPrefix(p, "/") {
			return fmt.Errorf("-chown %q: want /PATH=UID:GID", c)
		}
		owners[path.Clean(p)] = owner{uid, gid}
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", *tag, err)
	}

	// The layer: a tar of the directory in a temporary file, gzipped by the tarball package.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".layer-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeLayer(tmp, *rootfs, owners, when); err != nil {
		tmp.Close()
		return fmt.Errorf("layer from %s: %w", *rootfs, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(tmp.Name())
	if err != nil {
		return err
	}

	cf, err := empty.Image.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = *arch
	cf.Created = v1.Time{Time: when}
	cf.Config = v1.Config{
		Entrypoint: entrypoint,
		Cmd:        cmd,
		User:       *user,
		WorkingDir: *workdir,
		Env:        env,
		Labels:     map[string]string{},
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("-label %q: want K=V", l)
		}
		cf.Config.Labels[k] = v
	}
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("-env %q: want K=V", e)
		}
	}
	if len(expose) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range expose {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		return err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: when},
			CreatedBy: "ocibuild -rootfs " + filepath.Base(*rootfs),
			Comment:   "sluice images/ocibuild (scripts/images.sh)",
		},
	})
	if err != nil {
		return err
	}
	// Written beside the output and renamed: a failed run leaves no partial tarball.
	part := *out + ".part"
	defer os.Remove(part)
	if err := tarball.WriteToFile(part, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	if err := os.Rename(part, *out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", *out, *tag, digest)
	return nil
}

func creationTime(s string) (time.Time, error) {
	if s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("-created %q: %w", s, err)
		}
		return t.UTC(), nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		secs, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", e, err)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// writeLayer writes dir as a tar stream: directories, regular files and symbolic links only.
func writeLayer(w io.Writer, dir string, owners map[string]owner, when time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		} else if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("%s: only directories, regular files and symbolic links belong in an image", p)
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		for q := "/" + rel; ; q = path.Dir(q) {
			if o, ok := owners[q]; ok {
				hdr.Uid, hdr.Gid = o.uid, o.gid
				break
			}
			if q == "/" {
				break
			}
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = when, time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
