##@ Image without a container engine (see docs/design/real-nodes.md)

# Tarballs that `ctr -n k8s.io images import` loads: the licenseha image (the
# binaries of `make build`, like the Dockerfile) and the pause image of the
# real-node cluster. Files and config carry a fixed time: same binaries, same
# digest.
IMAGE_TAR := $(BIN)/licenseha-image.tar
PAUSE_IMAGE_TAR := $(BIN)/pause-image.tar

.PHONY: image
image: build ## Build the licenseha image and the pause image as tarballs in bin/ (IMG names the image; no Docker needed).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/pause ./hack/pause
	$(GO) run ./hack/image -bin-dir $(BIN) -commands $(subst $(eval) ,$(comma),$(COMMANDS)) -tag $(IMG) -out $(IMAGE_TAR) \
		-pause-bin $(BIN)/pause -pause-out $(PAUSE_IMAGE_TAR)

comma := ,
