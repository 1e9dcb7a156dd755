// Command image builds the licenseha image and the pause image without a
// container engine, as OCI tarballs that `ctr -n k8s.io images import`
// loads into a node's containerd (the real-node cluster, hack/realcluster).
//
// The licenseha image mirrors the Dockerfile: the static binaries of bin/
// (make build) in /usr/local/bin, user 65532:65532, entrypoint the manager.
// Unlike the Dockerfile it has no distroless base (no /etc/passwd, CA
// certificates or time zones); nothing in the project reads them. Files and
// the image config carry a fixed time, so the same binaries give the same
// image digest.
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
	if err := WriteImage(*out, *tag, Spec{Files: files, Entrypoint: []string{"/usr/local/bin/manager"}, User: "65532:65532"}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s\n", *tag, *out)
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
