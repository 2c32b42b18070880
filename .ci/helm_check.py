#!/usr/bin/env python3
"""Render deploy/helm/waygate with the real Helm v4 engine and validate what it makes.

No helm binary or Go toolchain is in the registries, but PyPI's helm-sdkpy wheel carries
Helm v4 compiled as a shared library. Its shim offers lint and install, not `template`, so
the chart is installed into a stand-in API server on loopback that answers discovery and
accepts every object (HELM_DRIVER=memory keeps the release in the process). The release's
rendered manifest is then checked against the Kubernetes JSON schemas (kubernetes-validate)
and against what Waygate needs (probes, drain time, shared keys, the values' own rules).

usage: helm_check.py CHART_DIR LIBHELM.so [OUT_DIR]
With WAYGATE_BIN set, each rendered waygate.toml is also checked by `waygate config validate`
with the environment the Deployment gives the container.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cffi
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"

# group/version → [(plural, kind, namespaced)] that the chart may create.
RESOURCES = {
    "v1": [("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
           ("services", "Service", True), ("serviceaccounts", "ServiceAccount", True),
           ("namespaces", "Namespace", False), ("pods", "Pod", True)],
    "apps/v1": [("deployments", "Deployment", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
}


class ApiServer(BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for `helm install --wait=false`."""

    created = []
    unknown = []

    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def not_found(self):
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404, "message": "not found"})

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "33", "gitVersion": "v" + K8S_VERSION,
                                    "platform": "linux/amd64"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = {}
            for gv in RESOURCES:
                if "/" in gv:
                    g, v = gv.split("/")
                    groups.setdefault(g, []).append({"groupVersion": gv, "version": v})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()]})
        gv = path[len("/api/"):] if path.startswith("/api/") else path[len("/apis/"):]
        if gv in RESOURCES:
            return self.reply(200, {"kind": "APIResourceList", "groupVersion": gv, "resources": [
                {"name": p, "singularName": k.lower(), "namespaced": ns, "kind": k,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for p, k, ns in RESOURCES[gv]]})
        return self.not_found()  # an object that does not exist yet

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        kind = body.get("kind")
        known = any(k == kind for rs in RESOURCES.values() for _, k, _ in rs)
        if not known:
            ApiServer.unknown.append(self.path)
            return self.not_found()
        ApiServer.created.append(body)
        body.setdefault("metadata", {})["uid"] = "00000000-0000-0000-0000-%012d" % len(ApiServer.created)
        self.reply(201, body)

    do_PUT = do_PATCH = do_POST

    def do_DELETE(self):
        self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


def helm_library(path):
    ffi = cffi.FFI()
    ffi.cdef("""
        typedef unsigned long long helm_sdkpy_handle;
        char* helm_sdkpy_last_error(void);
        void helm_sdkpy_free(void* ptr);
        int helm_sdkpy_config_create(char* namespace, char* kubeconfig, char* kubecontext,
                                     char* options_json, helm_sdkpy_handle* handle_out);
        int helm_sdkpy_lint(helm_sdkpy_handle handle, char* chart_path, char** result_json);
        int helm_sdkpy_install(helm_sdkpy_handle handle, char* release_name, char* chart_path,
                               char* values_json, char* version, char* options_json,
                               char** result_json);
    """)
    return ffi, ffi.dlopen(path)


def call(ffi, lib, fn, *args):
    out = ffi.new("char**")
    rc = getattr(lib, fn)(*args, out)
    if rc != 0:
        err = lib.helm_sdkpy_last_error()
        raise RuntimeError(f"{fn}: " + (ffi.string(err).decode() if err != ffi.NULL else f"rc {rc}"))
    text = ffi.string(out[0]).decode()
    lib.helm_sdkpy_free(out[0])
    return json.loads(text)


def cstr(ffi, s):
    return ffi.new("char[]", s.encode())


SHARED = {"database": {"url": "postgres://waygate:pw@postgres:5432/waygate"},
          "redis": {"url": "redis://redis:6379"}}
CASES = {
    # name → (values, kinds that must be present, kinds that must be absent)
    "fleet": ({**SHARED, "metrics": {"serviceMonitor": {"enabled": True}, "dashboard": {"enabled": True}}},
              {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
               "PodDisruptionBudget", "ServiceMonitor", "ServiceAccount"}, set()),
    "fixed-replicas": ({**SHARED, "autoscaling": {"enabled": False}, "replicaCount": 4,
                        "secrets": {"adminKey": "wg_fixed0_0123456789abcdef0123456789abcdef01234567"}},
                       {"Deployment", "PodDisruptionBudget"}, {"HorizontalPodAutoscaler", "ServiceMonitor"}),
    "single-sqlite": ({"replicaCount": 1, "autoscaling": {"enabled": False}},
                      {"Deployment"}, {"PodDisruptionBudget", "HorizontalPodAutoscaler"}),
}
# Values the chart must refuse, with the words its message must contain.
REFUSED = {
    "fleet-without-postgres": ({"replicaCount": 3, "autoscaling": {"enabled": False}}, "shared PostgreSQL"),
    "bad-admin-key": ({**SHARED, "secrets": {"adminKey": "hunter2"}}, "adminKey"),
}


def check_objects(name, objs, values, must, must_not):
    kinds = {o["kind"] for o in objs}
    assert must <= kinds, f"{name}: missing {must - kinds}"
    assert not (must_not & kinds), f"{name}: unexpected {must_not & kinds}"
    for o in objs:
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert o["kind"] == "ServiceMonitor", f"{name}: no schema for {o['kind']}"
            ep = o["spec"]["endpoints"][0]
            assert ep["port"] == "metrics" and ep["path"] == "/metrics", ep
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{name}: {o['kind']} {o['metadata']['name']}: {e.message} at {list(e.path)}")
    dep = next(o for o in objs if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    for k in ["WAYGATE_AUTH__ADMIN_KEY", "WAYGATE_SECRET_KEY", "WAYGATE_MCP__STATE_KEY", "WAYGATE_AUDIT__ANCHOR_KEY"]:
        assert "secretKeyRef" in env[k]["valueFrom"], f"{name}: {k} must come from the Secret"
    shared = bool(values.get("database"))
    assert ("WAYGATE_DATABASE_URL" in env) == shared, f"{name}: database URL wiring"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    # preStop + drain (10 s) + audit flush (15 s) must fit in the grace period.
    grace = pod["terminationGracePeriodSeconds"]
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] + 25 <= grace, f"{name}: grace {grace}"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    if any(o["kind"] == "HorizontalPodAutoscaler" for o in objs):
        assert "replicas" not in dep["spec"], f"{name}: replicas fights the HPA"
    secret = next((o for o in objs if o["kind"] == "Secret"), None)
    if secret:
        data = secret.get("stringData") or {}
        assert data["admin-key"].startswith("wg_"), f"{name}: admin key shape"
        given = values.get("secrets", {}).get("adminKey")
        assert not given or data["admin-key"] == given


def validate_with_waygate(name, objs):
    """The ConfigMap's waygate.toml and the Deployment's environment, as the pod sees them."""
    binary = os.environ.get("WAYGATE_BIN")
    if not binary:
        return
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and "waygate.toml" in o["data"])
    secret = next(o for o in objs if o["kind"] == "Secret")["stringData"]
    c = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {"PATH": os.environ.get("PATH", "")}
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        env[e["name"]] = secret[ref["key"]] if ref else e["value"]
    env.pop("WAYGATE_DATA_DIR")
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "waygate.toml")
    with open(path, "w") as f:
        f.write(cm["data"]["waygate.toml"])
    r = subprocess.run([binary, "config", "validate", path, "--data-dir", tmp], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{name}: waygate config validate: {r.stdout}{r.stderr}"
    print(f"{name}: waygate config validate accepts the rendered config and environment")


def main():
    chart, lib_path = sys.argv[1], sys.argv[2]
    out_dir = sys.argv[3] if len(sys.argv) > 3 else None
    if os.environ.get("HELM_DRIVER") != "memory":
        # Go reads the environment once, when the library loads: set it for a fresh process.
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "HELM_DRIVER": "memory"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "t", "user": {"token": "t"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "waygate"}}],
    })
    ffi, lib = helm_library(lib_path)
    tmp = tempfile.mkdtemp()
    kc_path = os.path.join(tmp, "kubeconfig")
    with open(kc_path, "w") as f:
        f.write(kubeconfig)
    handle = ffi.new("helm_sdkpy_handle*")
    if lib.helm_sdkpy_config_create(cstr(ffi, "waygate"), cstr(ffi, kc_path), ffi.NULL, cstr(ffi, "{}"), handle) != 0:
        raise RuntimeError("config: " + ffi.string(lib.helm_sdkpy_last_error()).decode())
    h = handle[0]

    lint = call(ffi, lib, "helm_sdkpy_lint", h, cstr(ffi, chart))
    problems = [m for m in (lint.get("Messages") or []) if m.get("Severity", 0) >= 2]
    assert not problems, f"helm lint: {problems}"
    for m in lint.get("Messages") or []:
        print(f"helm lint: {m}")

    opts = json.dumps({"wait": False, "timeout_seconds": 60, "disable_openapi_validation": True})
    for i, (name, (values, must, must_not)) in enumerate(CASES.items()):
        ApiServer.created.clear()
        rel = call(ffi, lib, "helm_sdkpy_install", h, cstr(ffi, f"wg{i}"), cstr(ffi, chart),
                   cstr(ffi, json.dumps(values)), cstr(ffi, ""), cstr(ffi, opts))
        objs = [o for o in yaml.safe_load_all(rel["manifest"]) if o]
        assert len(objs) == len(ApiServer.created), f"{name}: the API server saw {len(ApiServer.created)} objects"
        check_objects(name, objs, values, must, must_not)
        validate_with_waygate(name, objs)
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, f"{name}.yaml"), "w") as f:
                f.write(rel["manifest"])
        print(f"{name}: {len(objs)} objects rendered by Helm, valid against Kubernetes {K8S_VERSION}: "
              + ", ".join(sorted(o["kind"] for o in objs)))
    for i, (name, (values, words)) in enumerate(REFUSED.items()):
        try:
            call(ffi, lib, "helm_sdkpy_install", h, cstr(ffi, f"bad{i}"), cstr(ffi, chart),
                 cstr(ffi, json.dumps(values)), cstr(ffi, ""), cstr(ffi, opts))
        except RuntimeError as e:
            assert words in str(e), f"{name}: {e}"
            print(f"{name}: refused ({words})")
            continue
        raise AssertionError(f"{name}: rendered although it must be refused")
    assert not ApiServer.unknown, f"unexpected API calls: {ApiServer.unknown}"
    server.shutdown()


if __name__ == "__main__":
    main()
