package main

import (
	"fmt"
	"strings"
)

// imageBinDir is where the licenseha image keeps its binaries; the local
// cluster shows the checkout's bin/ there.
const imageBinDir = "/usr/local/bin"

// isProjectImage reports whether an image is the licenseha image: any
// registry and tag, as long as the repository ends in licenseha/licenseha.
func isProjectImage(image string) bool {
	repo := image
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return repo == "licenseha/licenseha" || strings.HasSuffix(repo, "/licenseha/licenseha")
}

// imageError is a container that cannot start because of its image; it
// becomes an ErrImagePull waiting reason.
type imageError struct{ image string }

func (e imageError) Error() string {
	return fmt.Sprintf("image %q is not available in the local cluster: it only runs images whose repository ends in licenseha/licenseha, mapping %s to the checkout's bin/", e.image, imageBinDir)
}
