// Command image builds the licenseha image and the pause image without a
// container engine, as OCI tarballs that `ctr -n k8s.io images import`
// loads into a node's containerd (the real-node cluster, hack/realcluster).
//
// The licenseha image mirrors the Dockerfile: the static binaries of bin/
// (make build) in /usr/local/bin, user 65532:65532, entrypoint the manager,
// OCI labels (version, revision, source, licence). Its base is -base (the
// Dockerfile's distroless image, pinned by digest, for releases) or, by
// default, none: then the layer brings the nonroot user and group and the
// host's CA bundle itself, which builds here without any registry. Files
// and the image config carry a fixed time, so the same binaries give the
// same image digest. -oci-layout also writes an OCI image layout; -push
// uploads the image with the docker config's credentials and helpers.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	binDir := flag.String("bin-dir", "bin", "directory with the static binaries (make build)")
	commands := flag.String("commands", "", "comma-separated binaries of bin-dir that go into the image (default: every cmd/ folder)")
	tag := flag.String("tag", "ghcr.io/licenseha/licenseha:dev", "name of the licenseha image")
	out := flag.String("out", "bin/licenseha-image.tar", "licenseha image tarball")
	pauseBin := flag.String("pause-bin", "", "static pause binary (hack/pause); with -pause-out, also build the pause image")
	pauseTag := flag.String("pause-tag", PauseImage, "name of the pause image")
	pauseOut := flag.String("pause-out", "", "pause image tarball")
	base := flag.String("base", "", "base image of the licenseha image (e.g. the Dockerfile's, by digest); empty: none, with a passwd entry and -ca-bundle in the layer")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle of an image without -base")
	version := flag.String("version", "dev", "org.opencontainers.image.version label")
	revision := flag.String("revision", "", "org.opencontainers.image.revision label (a git commit)")
	ociLayout := flag.String("oci-layout", "", "also write the licenseha image as an OCI image layout into this folder")
	push := flag.String("push", "", "push the licenseha image to this reference (registry/repository:tag)")
	flag.Parse()

	names := splitList(*commands)
	if len(names) == 0 {
		entries, err := os.ReadDir("cmd")
		if err != nil {
			log.Fatalf("listing cmd/ (run from the checkout or pass -commands): %v", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	files := map[string]string{}
	for _, n := range names {
		files["usr/local/bin/"+n] = filepath.Join(*binDir, n)
	}
	spec := Spec{Files: files, Entrypoint: []string{"/usr/local/bin/manager"}, User: "65532:65532", Labels: Labels(*version, *revision)}
	if *base != "" {
		b, err := PullBase(*base)
		if err != nil {
			log.Fatal(err)
		}
		spec.Base = b
	} else {
		data, err := offlineFiles(*caBundle)
		if err != nil {
			log.Fatal(err)
		}
		spec.Data = data
	}
	img, err := Build(spec)
	if err != nil {
		log.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		log.Fatal(err)
	}
	if err := WriteTarball(*out, *tag, img); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s (%s)\n", *tag, *out, digest)
	if *ociLayout != "" {
		if err := WriteLayout(*ociLayout, *tag, img); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: OCI layout %s\n", *tag, *ociLayout)
	}
	if *push != "" {
		if err := Push(*push, img); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("pushed %s@%s\n", *push, digest)
	}
	if *pauseOut != "" {
		if *pauseBin == "" {
			log.Fatal("-pause-out needs -pause-bin")
		}
		spec := Spec{Files: map[string]string{"pause": *pauseBin}, Entrypoint: []string{"/pause"}, User: "65535:65535"}
		if err := WriteImage(*pauseOut, *pauseTag, spec); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s\n", *pauseTag, *pauseOut)
	}
}

// Labels are the OCI labels of the licenseha image.
func Labels(version, revision string) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "licenseha",
		"org.opencontainers.image.description": "Kubernetes operator that runs license servers as redundant groups",
		"org.opencontainers.image.source":      "https://github.com/licenseha/licenseha",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     version,
	}
	if revision != "" {
		l["org.opencontainers.image.revision"] = revision
	}
	return l
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
