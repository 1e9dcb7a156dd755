package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// platform is the one platform the image is built for.
var platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// PullBase fetches a base image for the platform, with the credentials of
// the usual places (docker config, credential helpers).
func PullBase(ref string) (v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("base image %q: %w", ref, err)
	}
	return remote.Image(r, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(platform))
}

// Push uploads img as ref, with the credentials of the usual places.
func Push(ref string, img v1.Image) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("push target %q: %w", ref, err)
	}
	return remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

// WriteLayout writes img, annotated with its name, as the only image of an
// OCI image layout folder (replacing what was there).
func WriteLayout(dir, tag string, img v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
}

// offlineFiles are what an image without a base needs besides the binaries:
// the nonroot user and group the Dockerfile's distroless base has, and a CA
// bundle (webhook and SMTP notifications over TLS verify their servers).
func offlineFiles(caBundle string) (map[string][]byte, error) {
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle for an image without a base: %w (install ca-certificates or pass -ca-bundle)", err)
	}
	return map[string][]byte{
		"etc/passwd":                        []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
		"etc/group":                         []byte("root:x:0:\nnonroot:x:65532:\n"),
		"etc/ssl/certs/ca-certificates.crt": ca,
	}, nil
}
