#!/usr/bin/env bash
# Render deploy/helm/waygate with Helm v4 (the helm-sdkpy wheel from PyPI carries it as a
# shared library; no helm binary or Go toolchain is in the registries), validate every object
# against the Kubernetes JSON schemas (kubernetes-validate), check the Grafana dashboard copy,
# and run `waygate config validate` on each rendered config.   usage: .ci/helm.sh WAYGATE_BIN CACHE
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1 CACHE=$2
HELM_SDKPY=0.1.32
DIR="$CACHE/helm-sdkpy-$HELM_SDKPY"
LIB="$DIR/helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so"
if [ ! -f "$LIB" ]; then
  rm -rf "$DIR" && mkdir -p "$DIR"
  # The wheel declares Python ≥ 3.12 for its wrapper; only its library is used here.
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -d "$DIR" "helm-sdkpy==$HELM_SDKPY"
  (cd "$DIR" && python3 -m zipfile -e helm_sdkpy-*.whl .)
fi
python3 -m pip install -q kubernetes-validate==1.37.0 pyyaml cffi 2>&1 | grep -v "WARNING: Running pip as" || true
cmp deploy/monitoring/grafana-dashboard.json deploy/helm/waygate/dashboards/waygate.json \
  || { echo "deploy/helm/waygate/dashboards/waygate.json differs from deploy/monitoring/grafana-dashboard.json"; exit 1; }
WAYGATE_BIN="$BIN" python3 .ci/helm_check.py deploy/helm/waygate "$LIB" "$CACHE/helm-rendered"
