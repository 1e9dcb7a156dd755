// Command release writes the artefacts of a licenseha release into one
// folder (make release, dist/):
//
//   - install.yaml: config/default (CRDs, namespace, RBAC, the agents'
//     admission policy, the operator) built with kustomize, the operator's
//     image and its app.kubernetes.io/version label set to the release;
//   - licenseha-<version without v>.tgz: the Helm chart, version and
//     appVersion stamped (with -helm);
//   - kubectl-licenseha_<version>_<os>_<arch>.tar.gz (.zip for Windows): the
//     kubectl plugin, cross-compiled with the given -ldflags, and LICENSE;
//   - licenseha.yaml: the krew plugin manifest for those archives;
//   - checksums.txt: the SHA-256 of every file above, in sha256sum format.
//
// Archives and chart carry fixed times, owners and modes: the same commit
// gives the same files.
package main

import (
	"flag"
	"log"
)

func main() {
	var o Options
	flag.StringVar(&o.Version, "version", "", "the release: a semantic version with a leading v, e.g. v0.2.0 (also the image tag)")
	flag.StringVar(&o.Out, "out", "dist", "folder the artefacts are written into; must be empty or absent")
	flag.BoolVar(&o.Replace, "replace", false, "remove an earlier release's files from -out first (only when it holds nothing but files)")
	flag.StringVar(&o.KustomizeDir, "kustomize-dir", "config/default", "kustomization install.yaml is built from")
	flag.StringVar(&o.ImageRepo, "image-repo", DefaultImageRepo, "repository of the released image; install.yaml runs <image-repo>:<version>")
	flag.StringVar(&o.ChartDir, "chart", "charts/licenseha", "the Helm chart")
	flag.StringVar(&o.Helm, "helm", "", "helm binary that packages the chart; empty: no chart")
	flag.StringVar(&o.License, "license", "LICENSE", "licence file that goes into every plugin archive")
	flag.StringVar(&o.BuildDir, "build-dir", "bin/release", "where the plugin binaries are built, one folder <os>_<arch> each")
	flag.BoolVar(&o.SkipBuild, "skip-build", false, "do not cross-compile: take the plugin binaries already in -build-dir")
	flag.StringVar(&o.Go, "go", "go", "the go command")
	flag.StringVar(&o.LDFlags, "ldflags", "", "-ldflags of the plugin builds (the Makefile's: version and revision)")
	flag.StringVar(&o.DownloadURL, "download-url", DefaultDownloadURL, "base of the archives' URLs in the krew manifest; <download-url>/<version>/<archive>")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments: %v", flag.Args())
	}
	if err := Release(o); err != nil {
		log.Fatal(err)
	}
}
