# The verbs a person types. Everything installs itself on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast crds chart validate cluster-build cluster-up cluster-down system-deps bench clean \
	images push kind-up kind-down loadgen

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: the main job, end to end on this machine (sweep, learn, recommend, report)
demo: install
	$(BIN)/hwmatch run examples/local-demo.yaml
	$(BIN)/hwmatch report --out hwmatch-report
	@echo "Next: $(BIN)/hwmatch verify   # re-run the recommended configuration, predicted against measured"

## system-deps: Debian packages (Prometheus, containerd, runc, podman, buildah, mmdebstrap, ...) and the
## locally built control plane, kubelet and actionlint the tests use
system-deps:
	bash hack/install-system-deps.sh

## loadgen: vegeta, the serving trials' load generator (Go module proxy, cached in ~/.cache/hwmatch/bin);
## system-deps builds it too. Serving runs find it through HWMATCH_VEGETA=$$(bash hack/vegeta.sh)
loadgen:
	bash hack/vegeta.sh

## cluster-build: the control plane and the kubelet (Go module proxy, cached in ~/.cache/hwmatch/k8s)
cluster-build:
	bash hack/build.sh
	bash hack/build.sh --kubelet

## images: the benchmark and operator images (benchmark-image/Containerfile; base from Debian's packages)
images:
	bash hack/images.sh build

## push: tag the images as $(REGISTRY)/{benchmark,hwmatch}:<version> and push them (podman login first)
push:
	@[[ -n "$(REGISTRY)" ]] || { echo "usage: make push REGISTRY=ghcr.io/you"; exit 2; }
	bash hack/images.sh build >/dev/null
	bash hack/images.sh push "$(REGISTRY)"

## test: every test, from a fresh machine
test: install system-deps images
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not cluster"

## crds: the CRDs from the API models, in crds/ and in the Helm chart
crds: install
	$(BIN)/hwmatch crds --out crds
	$(BIN)/hwmatch crds --chart --out charts/hwmatch/templates/crds

## chart: regenerate the chart's CRDs from the API models (like crds/) and lint the chart with the built helm
chart: crds
	HELM="$$(bash hack/build.sh --print-helm)"; if [[ -x "$$HELM" ]]; then "$$HELM" lint --strict charts/hwmatch; \
	else echo "helm is not built ($$HELM): run make cluster-build to lint the chart"; fi

validate: install
	$(BIN)/hwmatch validate examples/*.yaml

## cluster-up: the local cluster (control plane, kwok pools, this machine as a real node running the images)
cluster-up: install system-deps images
	bash hack/cluster.sh up

cluster-down:
	bash hack/cluster.sh down

## kind-up: a kind cluster (Docker) with the pools' labels, the images loaded and the chart installed (docs/kind.md)
kind-up: install
	bash hack/kind.sh up

kind-down:
	bash hack/kind.sh down

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .hwmatch hwmatch-report
