package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileIsEquivalent: the Dockerfile builds what hack/image builds
// (user, entrypoint, binaries' folder, labels) on the base image-push uses.
func TestDockerfileIsEquivalent(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile("../make/image.mk")
	if err != nil {
		t.Fatal(err)
	}
	d := string(df)
	for _, want := range []string{`USER 65532:65532`, `ENTRYPOINT ["/usr/local/bin/manager"]`, `COPY --from=build /out/ /usr/local/bin/`,
		// The binaries carry the version the labels name (make build: VERSION_LDFLAGS).
		`internal/version.Version=${VERSION}`, `internal/version.Revision=${REVISION}`} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	for k := range Labels("v", "r") {
		if !strings.Contains(d, k+"=") {
			t.Errorf("Dockerfile lacks the label %s", k)
		}
	}
	base := regexp.MustCompile(`(?m)^DISTROLESS := (\S+)$`).FindStringSubmatch(string(mk))
	if base == nil || !strings.Contains(base[1], "@sha256:") {
		t.Fatalf("image.mk: DISTROLESS not pinned by digest: %v", base)
	}
	if !strings.Contains(d, "FROM "+base[1]+"\n") {
		t.Errorf("Dockerfile's base is not image.mk's DISTROLESS %s", base[1])
	}
}
