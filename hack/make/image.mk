##@ Image without a container engine (see docs/design/real-nodes.md)

# The licenseha image (the binaries of `make build`, like the Dockerfile) and
# the pause image of the real-node cluster, as tarballs that `ctr -n k8s.io
# images import` and `docker load` accept, plus an OCI layout. Files and
# config carry a fixed time: same binaries, same digest. Without BASE the
# image has no base layer (the nonroot user and the host's CA bundle come in
# its own layer), which needs no registry; releases pass BASE, by default the
# Dockerfile's distroless base pinned by digest (make image-push). VERSION
# and REVISION (Makefile) label the image and are stamped into its binaries.
IMAGE_TAR := $(BIN)/licenseha-image.tar
PAUSE_IMAGE_TAR := $(BIN)/pause-image.tar
IMAGE_LAYOUT := $(BIN)/oci/licenseha
DISTROLESS := gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
IMAGE_FLAGS = -bin-dir $(BIN) -commands $(subst $(eval) ,$(comma),$(COMMANDS)) -version $(VERSION) -revision "$(REVISION)" \
	$(if $(BASE),-base $(BASE))

.PHONY: image
image: build ## Build the licenseha image and the pause image as tarballs in bin/ and an OCI layout (IMG names it, BASE a base image; no Docker needed).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/pause ./hack/pause
	$(GO) run ./hack/image $(IMAGE_FLAGS) -tag $(IMG) -out $(IMAGE_TAR) -oci-layout $(IMAGE_LAYOUT) \
		-pause-bin $(BIN)/pause -pause-out $(PAUSE_IMAGE_TAR)

.PHONY: image-push
image-push: BASE ?= $(DISTROLESS)
image-push: build ## Build the image on BASE (default: distroless static nonroot, by digest) and push it as $(REGISTRY)/licenseha:$(VERSION) (credentials: docker config and its helpers).
	@test -n "$(REGISTRY)" || { echo "REGISTRY is not set, e.g. make image-push REGISTRY=registry.example.com/team VERSION=v0.2.0" >&2; exit 1; }
	$(GO) run ./hack/image $(IMAGE_FLAGS) -tag $(REGISTRY)/licenseha:$(VERSION) -out $(BIN)/licenseha-$(VERSION).tar \
		-push $(REGISTRY)/licenseha:$(VERSION)

comma := ,
