#!/usr/bin/env python3
"""Renders the Helm chart with its defaults and each ci/*-values.yaml and checks the manifests.

    check_manifests.py --helm PATH [--chart helm/switchyard]

Checks, for every rendering: probes, selectors and labels, the flag file, mounted secrets and
that no secret value leaves the Secret, the security context, the termination grace period,
the workload of each mode, the Services, Ingress, NetworkPolicy, monitoring objects and the
helm test hook. Then that the schema and the chart's own checks reject bad values.
Prints one line per check and exits 1 when any fails.
"""

import argparse
import base64
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

RELEASE = "sy"
NAMESPACE = "switchyard-ci"
HEALTH_SERVICES = {"", "switchyard.v1.Gateway"}
SECRET_FILE_FLAGS = ("master_key_file", "bootstrap_operator_key_file", "database_password_file",
                     "tls_cert_file", "tls_key_file", "tls_client_ca_file")
SELECTOR_FORBIDDEN = ("helm.sh/chart", "app.kubernetes.io/version", "app.kubernetes.io/managed-by")


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.case = ""

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            where = f"[{self.case}] " if self.case else ""
            print(f"  FAIL  {where}{what}" + (f": {detail}" if detail else ""))
        return ok


def deep_merge(base, override):
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def helm(helm_bin, *args):
    return subprocess.run([helm_bin, *args], capture_output=True, text=True)


def render(helm_bin, chart, args):
    result = helm(helm_bin, "template", RELEASE, chart, "--namespace", NAMESPACE, *args)
    if result.returncode != 0:
        return None, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return docs, result.stdout


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def parse_duration_seconds(text):
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9.]+)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a duration: {text}")
    return sum(float(a) * units[b] for a, b in parts)


def secret_values(values):
    """Secret strings given in the values, and the key material of each keyring line."""
    s = values.get("secrets", {})
    found = []
    for name in ("masterKeyring", "bootstrapOperatorKey", "databasePassword"):
        text = (s.get(name) or "").strip()
        if not text:
            continue
        found.append((name, text))
        if name == "masterKeyring":
            for line in text.splitlines():
                if ":" in line:
                    found.append((name + " key material", line.split(":", 1)[1].strip()))
    return found


class Rendering:
    def __init__(self, docs):
        self.docs = docs

    def of_kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind, name=None):
        for d in self.of_kind(kind):
            if name is None or d["metadata"]["name"] == name:
                return d
        return None


def read_server_flags(repo_root):
    """{flag name: C++ type} from the ABSL_FLAG definitions of server/main.cc."""
    path = os.path.join(repo_root, "server", "main.cc")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    return {name: kind.strip() for kind, name in re.findall(r"ABSL_FLAG\(\s*([\w:]+)\s*,\s*(\w+)\s*,", text)}


def check_flags_known(c, flags, server_flags):
    if server_flags is None:
        print("  skip  flag names against server/main.cc (not found)")
        return
    duration = re.compile(r"^-?([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$|^0$|^inf$")
    for name, value in flags.items():
        kind = server_flags.get(name)
        if not c.check(kind is not None, f"--{name} is a flag of switchyard-server"):
            continue
        if kind == "absl::Duration":
            ok = duration.match(value) is not None
        elif kind in ("int64_t", "int32_t", "int", "uint64_t"):
            ok = re.fullmatch(r"-?[0-9]+", value) is not None
        elif kind == "double":
            ok = re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", value) is not None
        elif kind == "bool":
            ok = value in ("true", "false", "1", "0")
        else:
            ok = True
        c.check(ok, f"--{name}={value} parses as {kind}")


def check_case(c, name, docs, values, chart_dir, server_flags):
    r = Rendering(docs)
    mode = values["mode"]
    fullname = f"{RELEASE}-switchyard"
    c.case = name
    print(f"[{name}] mode={mode}, {len(docs)} manifests")

    # --- every manifest -----------------------------------------------------------------------
    bad_meta = [d.get("kind") for d in docs
                if not d.get("apiVersion") or not d.get("kind") or not d.get("metadata", {}).get("name")]
    c.check(not bad_meta, "every manifest has apiVersion, kind and metadata.name", str(bad_meta))
    wrong_ns = [f'{d["kind"]}/{d["metadata"]["name"]}' for d in docs
                if d["kind"] not in ("ServiceMonitor", "PrometheusRule")
                and d["metadata"].get("namespace") != NAMESPACE]
    c.check(not wrong_ns, "every manifest is in the release namespace", str(wrong_ns))
    required_labels = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                       "app.kubernetes.io/managed-by", "helm.sh/chart")
    unlabelled = [f'{d["kind"]}/{d["metadata"]["name"]}' for d in docs
                  if not all(k in d["metadata"].get("labels", {}) for k in required_labels)]
    c.check(not unlabelled, "every manifest has the app.kubernetes.io/* and helm.sh/chart labels",
            str(unlabelled))
    long_names = [d["metadata"]["name"] for d in docs if len(d["metadata"]["name"]) > 63]
    c.check(not long_names, "names fit in 63 characters", str(long_names))

    # --- workload of the mode -----------------------------------------------------------------
    statefulsets, deployments = r.of_kind("StatefulSet"), r.of_kind("Deployment")
    hpa, pdb = r.one("HorizontalPodAutoscaler"), r.one("PodDisruptionBudget")
    if mode == "embedded":
        c.check(len(statefulsets) == 1 and not deployments, "embedded mode renders one StatefulSet, no Deployment")
        if not statefulsets:
            return
        workload = statefulsets[0]
        c.check(workload["spec"].get("replicas") == 1, "StatefulSet has exactly 1 replica",
                str(workload["spec"].get("replicas")))
        headless = r.one("Service", workload["spec"].get("serviceName"))
        c.check(headless is not None and headless["spec"].get("clusterIP") == "None",
                "StatefulSet serviceName is a rendered headless Service")
        claims = workload["spec"].get("volumeClaimTemplates", [])
        if values["persistence"]["enabled"]:
            c.check(any(t["metadata"]["name"] == "data" for t in claims),
                    "StatefulSet has a volumeClaimTemplate 'data'")
            claim = next((t for t in claims if t["metadata"]["name"] == "data"), {})
            c.check(claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
                    == values["persistence"]["size"], "claim requests persistence.size")
        c.check(hpa is None and pdb is None, "embedded mode renders no HPA and no PDB")
    else:
        c.check(len(deployments) == 1 and not statefulsets, "external mode renders one Deployment, no StatefulSet")
        if not deployments:
            return
        workload = deployments[0]
        if values["autoscaling"]["enabled"]:
            c.check("replicas" not in workload["spec"], "autoscaled Deployment leaves replicas to the HPA")
            c.check(hpa is not None, "HorizontalPodAutoscaler rendered when autoscaling.enabled")
            if hpa:
                ref = hpa["spec"]["scaleTargetRef"]
                c.check(ref["kind"] == "Deployment" and ref["name"] == workload["metadata"]["name"],
                        "HPA scales the Deployment", str(ref))
                c.check(hpa["spec"]["minReplicas"] == values["autoscaling"]["minReplicas"]
                        and hpa["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"]
                        and hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"],
                        "HPA min/max replicas follow the values")
                c.check(len(hpa["spec"].get("metrics", [])) > 0, "HPA has at least one metric")
                uses_cpu = any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"])
                gateway = workload["spec"]["template"]["spec"]["containers"][0]
                if uses_cpu:
                    c.check("cpu" in gateway.get("resources", {}).get("requests", {}),
                            "CPU autoscaling has a CPU request to scale against")
        else:
            c.check(workload["spec"].get("replicas") == values["replicaCount"],
                    "Deployment replicas == replicaCount")
            c.check(hpa is None, "no HPA without autoscaling.enabled")
        c.check((pdb is not None) == bool(values["podDisruptionBudget"]["enabled"]),
                "PodDisruptionBudget rendered exactly when enabled")
        spread = workload["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        pod_selector = workload["spec"]["selector"]["matchLabels"]
        c.check(any(t["topologyKey"] == "kubernetes.io/hostname" for t in spread),
                "external mode spreads replicas over nodes")
        c.check(all(subset(pod_selector, t.get("labelSelector", {}).get("matchLabels", {})) for t in spread),
                "spread constraints select this release's pods only", str(spread))
        c.check(not any(v.get("persistentVolumeClaim") for v in workload["spec"]["template"]["spec"]["volumes"]),
                "external mode mounts no PersistentVolumeClaim")

    pod = workload["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    containers = spec["containers"]
    gateway = next((x for x in containers if x["name"] == "gateway"), containers[0])

    # --- selectors --------------------------------------------------------------------------
    selector = workload["spec"]["selector"]["matchLabels"]
    c.check(subset(selector, pod_labels), "workload selector matches its pod template labels")
    for kind in ("StatefulSet", "Deployment", "PodDisruptionBudget"):
        for d in r.of_kind(kind):
            sel = d["spec"]["selector"].get("matchLabels", {})
            c.check(not any(k in sel for k in SELECTOR_FORBIDDEN),
                    f"{kind} selector has no helm.sh/chart, version or managed-by label", str(sel))
    if pdb:
        c.check(subset(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selector matches the pods")
        c.check(("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"]),
                "PDB sets exactly one of minAvailable / maxUnavailable")
        budget = values["podDisruptionBudget"]
        if budget.get("minAvailable") is not None:
            c.check(pdb["spec"].get("minAvailable") == budget["minAvailable"],
                    "a minAvailable set in values is the PDB's budget",
                    str(pdb["spec"]))
        else:
            c.check(pdb["spec"].get("maxUnavailable") == budget.get("maxUnavailable"),
                    "without minAvailable, the PDB uses maxUnavailable", str(pdb["spec"]))

    container_ports = {p["name"]: p["containerPort"] for p in gateway.get("ports", [])}
    services = r.of_kind("Service")
    c.check(len(services) >= 1, "a Service is rendered")
    for svc in services:
        sname = svc["metadata"]["name"]
        sel = svc["spec"].get("selector", {})
        c.check(bool(sel) and subset(sel, pod_labels), f"Service {sname} selector matches the pods")
        c.check(not any(k in sel for k in SELECTOR_FORBIDDEN), f"Service {sname} selector has no chart/version label")
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            ok = target in container_ports if isinstance(target, str) else target in container_ports.values()
            c.check(ok, f"Service {sname} port {p['name']} targets a container port", str(target))
    main_svc = r.one("Service", fullname)
    c.check(main_svc is not None and {"grpc", "http"} <= {p["name"] for p in main_svc["spec"]["ports"]},
            "main Service exposes the grpc and http ports")

    # --- flag file --------------------------------------------------------------------------
    args = gateway.get("args", [])
    flagfile_args = [a for a in args if a.startswith("--flagfile=")]
    c.check(len(flagfile_args) == 1, "gateway container passes one --flagfile")
    mounts = gateway.get("volumeMounts", [])
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claim_names = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}

    def resolve(path):
        """The volume and the file name inside it that serve `path`."""
        for m in mounts:
            mp = m["mountPath"].rstrip("/") + "/"
            if path.startswith(mp) and "subPath" not in m:
                return m, path[len(mp):]
        return None, None

    flags = {}
    if flagfile_args:
        path = flagfile_args[0].split("=", 1)[1]
        mount, key = resolve(path)
        vol = volumes.get(mount["name"]) if mount else None
        c.check(vol is not None and "configMap" in vol, "flag file is mounted from a ConfigMap", path)
        if vol and "configMap" in vol:
            cm = r.one("ConfigMap", vol["configMap"]["name"])
            c.check(cm is not None and key in cm.get("data", {}), f"ConfigMap holds the flag file key {key}")
            if cm and key in cm.get("data", {}):
                for line in cm["data"][key].splitlines():
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    if not (line.startswith("--") and "=" in line):
                        c.check(False, f"flag line is --name=value: {line}")
                        continue
                    name_, _, value = line[2:].partition("=")
                    flags[name_] = value
    if not flags:
        c.check(False, "flag file parsed")
        return
    check_flags_known(c, flags, server_flags)
    missing = [f for f in ("listen", "http_listen", "data_dir", "drain_deadline", "master_key_file") if f not in flags]
    if not c.check(not missing, "flag file sets listen, http_listen, data_dir, drain_deadline, master_key_file",
                   str(missing)):
        return
    c.check(port_of(flags["listen"]) == container_ports.get("grpc"), "--listen port == container port grpc",
            f'{flags.get("listen")} vs {container_ports.get("grpc")}')
    c.check(port_of(flags["http_listen"]) == container_ports.get("http"),
            "--http_listen port == container port http")
    if "health_listen" in flags:
        c.check(port_of(flags["health_listen"]) == container_ports.get("health"),
                "--health_listen port == container port health")
    data_mount, _ = resolve(flags["data_dir"].rstrip("/") + "/x")
    data_ok = data_mount is not None and (data_mount["name"] in claim_names
                                          or "emptyDir" in volumes.get(data_mount["name"], {})
                                          or "persistentVolumeClaim" in volumes.get(data_mount["name"], {}))
    c.check(data_ok and not data_mount.get("readOnly"), "--data_dir is a writable volume mount", flags["data_dir"])
    if mode == "embedded" and values["persistence"]["enabled"]:
        c.check(data_mount is not None and data_mount["name"] in claim_names,
                "--data_dir is the volumeClaimTemplate's volume")
    tls_on = "tls_cert_file" in flags
    c.check(tls_on == bool(values["tls"]["enabled"]), "TLS flags follow tls.enabled")
    if tls_on:
        c.check("health_listen" in flags, "TLS mode runs the plaintext health listener for probes")
        c.check("tls_key_file" in flags, "TLS mode passes --tls_key_file")
    if mode == "external":
        url = flags.get("database_url", "")
        c.check(bool(url), "external mode passes --database_url")
        c.check(not re.search(r"://[^/@]*:[^/@]*@", url) and "password=" not in url.lower(),
                "--database_url carries no password", url)
        c.check("database_password_file" in flags, "external mode passes --database_password_file")
        ca_secret = values["externalDatabase"].get("caSecret")
        if ca_secret:
            env = {e["name"]: e.get("value") for e in gateway.get("env", [])}
            ca_path = env.get("PGSSLROOTCERT", "")
            mount, key = resolve(ca_path) if ca_path else (None, None)
            vol = volumes.get(mount["name"]) if mount else None
            c.check(vol is not None and vol.get("secret", {}).get("secretName") == ca_secret
                    and any(i["path"] == key for i in vol["secret"].get("items", [])),
                    "PGSSLROOTCERT names the database CA mounted from externalDatabase.caSecret", ca_path)
    else:
        c.check("database_url" not in flags, "embedded mode passes no --database_url")

    # --- files named by flags exist in their volumes -------------------------------------------
    secrets_rendered = {s["metadata"]["name"]: s for s in r.of_kind("Secret")}
    for flag in SECRET_FILE_FLAGS + ("catalog_file",):
        if flag not in flags:
            continue
        mount, item = resolve(flags[flag])
        vol = volumes.get(mount["name"]) if mount else None
        source = (vol or {}).get("secret") or (vol or {}).get("configMap")
        ok = source is not None
        key = None
        if ok and source.get("items"):
            match = [i for i in source["items"] if i["path"] == item]
            ok = bool(match)
            key = match[0]["key"] if match else None
        elif ok:
            key = item
        c.check(ok and mount.get("readOnly", False), f"--{flag} is a file of a read-only mounted volume",
                flags[flag])
        if not ok:
            continue
        if flag in SECRET_FILE_FLAGS:
            c.check("secret" in vol, f"--{flag} comes from a Secret volume")
            sname = vol.get("secret", {}).get("secretName")
            if sname in secrets_rendered:
                data = secrets_rendered[sname].get("data", {})
                c.check(key in data, f"Secret {sname} holds key {key} for --{flag}")
            elif flag in ("master_key_file", "bootstrap_operator_key_file", "database_password_file"):
                c.check(sname == values["secrets"]["existingSecret"],
                        f"--{flag} comes from secrets.existingSecret", str(sname))
        else:
            cm = r.one("ConfigMap", vol["configMap"]["name"])
            c.check(cm is not None and key in cm.get("data", {}), f"ConfigMap holds {key} for --{flag}")

    # --- secrets stay in Secrets ----------------------------------------------------------------
    given = secret_values(values)
    if values["secrets"]["existingSecret"]:
        c.check(not secrets_rendered, "existingSecret: the chart renders no Secret of its own")
        vol = volumes.get("secrets", {}).get("secret", {})
        keys = {i["key"] for i in vol.get("items", [])}
        c.check(vol.get("secretName") == values["secrets"]["existingSecret"]
                and values["secrets"]["masterKeyringKey"] in keys,
                "existingSecret is mounted with the configured masterKeyringKey", str(vol))
        if values["secrets"]["bootstrapOperatorKeyKey"]:
            c.check(values["secrets"]["bootstrapOperatorKeyKey"] in keys,
                    "existingSecret is mounted with the configured bootstrapOperatorKeyKey")
    else:
        chart_secret = secrets_rendered.get(fullname)
        c.check(chart_secret is not None, "chart creates its Secret when no existingSecret")
        if chart_secret:
            decoded = {k: base64.b64decode(v).decode() for k, v in chart_secret.get("data", {}).items()}
            for label, value in given:
                c.check(any(value in v for v in decoded.values()), f"Secret holds {label}")
    for d in docs:
        if d["kind"] == "Secret":
            continue
        text = yaml.safe_dump(d)
        for label, value in given:
            encoded = base64.b64encode(value.encode()).decode()
            leaked = value in text or encoded in text
            if d["kind"] == "ConfigMap" or leaked:
                c.check(not leaked, f"{label} does not appear in {d['kind']}/{d['metadata']['name']}")
    for cm in r.of_kind("ConfigMap"):
        for k, v in cm.get("data", {}).items():
            bad = re.findall(r"syo_[0-9A-Za-z]{36}|[a-z][a-z0-9-]*:[A-Za-z0-9+/]{43}=", v)
            c.check(not bad, f"ConfigMap {cm['metadata']['name']}/{k} holds no key-shaped string")
    for x in containers:
        for e in x.get("env", []) or []:
            c.check("value" not in e or not re.search("(?i)key|password|secret|token", e["name"]),
                    f"env {e['name']} holds no literal secret")

    # --- probes -----------------------------------------------------------------------------
    expected_probe_port = port_of(flags["health_listen"]) if tls_on else None
    allowed = {port_of(flags["listen"])} | ({port_of(flags["health_listen"])} if "health_listen" in flags else set())
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = gateway.get(probe_name)
        if not values[probe_name]["enabled"]:
            c.check(probe is None, f"{probe_name} disabled")
            continue
        c.check(probe is not None and "grpc" in probe, f"{probe_name} is a native gRPC probe")
        if not probe or "grpc" not in probe:
            continue
        port = probe["grpc"]["port"]
        c.check(isinstance(port, int) and port in container_ports.values(),
                f"{probe_name} port {port} is a container port")
        c.check(port in allowed, f"{probe_name} port {port} is the gRPC or health listener of the flag file")
        if expected_probe_port is not None:
            c.check(port == expected_probe_port, f"{probe_name} uses the plaintext health listener under TLS")
        c.check(probe["grpc"].get("service", "") in HEALTH_SERVICES,
                f"{probe_name} checks a health service the server reports", probe["grpc"].get("service"))

    # --- security ---------------------------------------------------------------------------
    psc = spec.get("securityContext", {})
    c.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001,
            "pod runs as non-root uid 10001", str(psc))
    c.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile RuntimeDefault")
    c.check(spec.get("automountServiceAccountToken") is False, "pod mounts no ServiceAccount token")
    c.check("hostNetwork" not in spec and "hostPID" not in spec, "pod uses no host namespaces")
    for x in containers:
        sc = x.get("securityContext", {})
        c.check(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
                and "ALL" in sc.get("capabilities", {}).get("drop", []) and not sc.get("privileged")
                and sc.get("runAsNonRoot") is True,
                f"container {x['name']} securityContext is restrictive", str(sc))
    tmp_mount, _ = resolve("/tmp/x")
    c.check(tmp_mount is not None, "/tmp is a writable volume (read-only root filesystem)")

    # --- termination ------------------------------------------------------------------------
    try:
        drain = parse_duration_seconds(flags.get("drain_deadline", ""))
    except ValueError as e:
        c.check(False, "--drain_deadline is a duration", str(e))
        drain = float("inf")
    pre_stop = 0
    cmd = gateway.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if cmd and cmd[0] == "sleep":
        pre_stop = float(cmd[1])
    grace = spec.get("terminationGracePeriodSeconds", 30)
    c.check(grace > drain + pre_stop,
            f"terminationGracePeriodSeconds {grace} > preStop {pre_stop:g}s + drain deadline {drain:g}s")

    # --- pod template annotations ---------------------------------------------------------------
    ann = pod["metadata"].get("annotations", {})
    c.check("checksum/config" in ann, "pod template rolls on ConfigMap changes (checksum/config)")

    # --- ingress ----------------------------------------------------------------------------
    ing = r.one("Ingress")
    c.check((ing is not None) == bool(values["ingress"]["enabled"]), "Ingress rendered exactly when enabled")
    if ing:
        paths = set()
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                paths.add(p["path"])
                svc = r.one("Service", p["backend"]["service"]["name"])
                port = p["backend"]["service"]["port"].get("number")
                sp = next((x for x in (svc or {}).get("spec", {}).get("ports", []) if x["port"] == port), None)
                c.check(sp is not None and sp.get("targetPort") == "http",
                        f"Ingress path {p['path']} goes to the Service's HTTP port")
        c.check({"/webhooks", "/status"} <= paths, "Ingress routes /webhooks and /status", str(paths))

    # --- network policy ---------------------------------------------------------------------
    np_ = r.one("NetworkPolicy")
    c.check((np_ is not None) == bool(values["networkPolicy"]["enabled"]), "NetworkPolicy rendered exactly when enabled")
    if np_:
        c.check(subset(np_["spec"]["podSelector"]["matchLabels"], pod_labels), "NetworkPolicy selects the pods")
        ports = {p["port"] for rule in np_["spec"]["ingress"] for p in rule.get("ports", [])}
        c.check({"grpc", "http"} <= ports and ports <= set(container_ports),
                "NetworkPolicy admits the grpc and http container ports", str(ports))

    # --- monitoring -------------------------------------------------------------------------
    sm = r.one("ServiceMonitor")
    c.check((sm is not None) == bool(values["metrics"]["serviceMonitor"]["enabled"]),
            "ServiceMonitor rendered exactly when enabled")
    if sm:
        matched = [s for s in services if subset(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
                   and all(e["operator"] != "DoesNotExist" or e["key"] not in s["metadata"]["labels"]
                           for e in sm["spec"]["selector"].get("matchExpressions", []))]
        c.check([s["metadata"]["name"] for s in matched] == [fullname],
                "ServiceMonitor selects the main Service only", str([s["metadata"]["name"] for s in matched]))
        c.check(all(e["port"] in {p["name"] for p in main_svc["spec"]["ports"]} for e in sm["spec"]["endpoints"]),
                "ServiceMonitor endpoints name a Service port")
        c.check(all(e["port"] == "http" and e.get("path") == "/metrics" for e in sm["spec"]["endpoints"]),
                "ServiceMonitor scrapes /metrics on the HTTP port")
    rule = r.one("PrometheusRule")
    pr_values = values["metrics"]["prometheusRule"]
    c.check((rule is not None) == bool(pr_values["enabled"]), "PrometheusRule rendered exactly when enabled")
    if rule:
        with open(os.path.join(chart_dir, "files", "alerts.yaml")) as f:
            shipped = yaml.safe_load(f)
        shipped_names = {x["alert"] for g in shipped["groups"] for x in g["rules"]}
        rendered = {x.get("alert"): x for g in rule["spec"]["groups"] for x in g["rules"]}
        expected = shipped_names - set(pr_values["disabledAlerts"])
        c.check(expected <= set(rendered), "PrometheusRule holds every enabled alert of files/alerts.yaml")
        c.check(not (set(pr_values["disabledAlerts"]) & set(rendered)), "disabled alerts are left out")
        for alert in expected:
            labels = rendered[alert].get("labels", {})
            c.check(subset(pr_values["additionalAlertLabels"], labels) and "severity" in labels,
                    f"alert {alert} has a severity and the additional labels")

    # --- helm test hook ---------------------------------------------------------------------
    tests = [d for d in r.of_kind("Pod") if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    c.check(len(tests) == 1, "one helm test Pod")
    for t in tests:
        tc = t["spec"]["containers"][0]
        command = tc.get("command", []) + tc.get("args", [])
        c.check(command[:1] == ["switchyardctl"] and command[-2:] == ["health", "check"],
                "test runs `switchyardctl ... health check`", " ".join(command))
        c.check(tc["image"] == gateway["image"], "test uses the gateway's image")
        target = next((a.split("=", 1)[1] for a in command if a.startswith("--target=")), "")
        host, _, tport = target.rpartition(":")
        svc = r.one("Service", host)
        sp = next((p for p in (svc or {}).get("spec", {}).get("ports", []) if p["port"] == int(tport or 0)), None)
        c.check(sp is not None, f"test target {target} is a port of a rendered Service")
        if sp:
            tgt = sp["targetPort"]
            cport = container_ports.get(tgt) if isinstance(tgt, str) else tgt
            grpc_port = port_of(flags["listen"])
            health_port = port_of(flags["health_listen"]) if "health_listen" in flags else None
            c.check(cport in (grpc_port, health_port), "test target reaches the gRPC or health listener")
            if cport == grpc_port and tls_on:
                c.check("--tls" in command, "test speaks TLS to the TLS gRPC port")
        c.check(not subset(main_svc["spec"]["selector"], t["metadata"]["labels"]),
                "the Service does not select the test Pod")
        tsc = tc.get("securityContext", {})
        c.check(tsc.get("readOnlyRootFilesystem") is True and tsc.get("allowPrivilegeEscalation") is False,
                "test container securityContext is restrictive")
        if np_ and values["networkPolicy"]["grpcFrom"]:
            peers = next(rule_.get("from", []) for rule_ in np_["spec"]["ingress"]
                         if any(p["port"] == "grpc" for p in rule_.get("ports", [])))
            c.check(any(subset(p.get("podSelector", {}).get("matchLabels"), t["metadata"]["labels"])
                        and p.get("podSelector", {}).get("matchLabels") for p in peers),
                    "NetworkPolicy lets the test Pod reach the gRPC port")


def check_alert_file(c, chart_dir):
    c.case = "files/alerts.yaml"
    print("[files/alerts.yaml]")
    with open(os.path.join(chart_dir, "files", "alerts.yaml")) as f:
        rules = yaml.safe_load(f)
    names = []
    for group in rules["groups"]:
        for x in group["rules"]:
            names.append(x.get("alert"))
            c.check(bool(x.get("alert")) and bool(x.get("expr")), f"rule {x.get('alert')} has alert and expr")
            c.check(x.get("labels", {}).get("severity") in ("critical", "warning", "info"),
                    f"rule {x.get('alert')} has a severity")
            c.check(bool(x.get("annotations", {}).get("summary")), f"rule {x.get('alert')} has a summary")
            if "for" in x:
                parse_duration_seconds(x["for"])
    c.check(len(names) == len(set(names)), "alert names are unique")
    text = open(os.path.join(chart_dir, "files", "alerts.yaml")).read()
    for metric in ("switchyard_webhooks_rejected_total", "switchyard_delivery_lag_seconds",
                   "switchyard_dead_letters_total", 'switchyard_connection_health{health=~"OFFLINE|AUTH_REQUIRED"}',
                   "switchyard_credit_pool_available", "switchyard_credit_pool_capacity", "up{"):
        c.check(metric in text, f"alerts cover {metric}")
    for counter in re.findall(r"\b(switchyard_[a-z_]+_total)\b", text):
        c.check(re.search(r"(rate|increase)\(" + re.escape(counter), text) is not None,
                f"counter {counter} is read through rate()/increase()")
    promtool = subprocess.run(["sh", "-c", "command -v promtool"], capture_output=True, text=True).stdout.strip()
    if promtool:
        res = subprocess.run([promtool, "check", "rules", os.path.join(chart_dir, "files", "alerts.yaml")],
                             capture_output=True, text=True)
        c.check(res.returncode == 0, "promtool check rules", res.stdout + res.stderr)
    else:
        print("  skip  promtool check rules (promtool not installed)")


NOTES_PREVIEW = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-preview
data:
  notes: |
{{ tpl (.Files.Get "files/notes-preview.txt") . | indent 4 }}
"""


def notes_chart(chart):
    """A copy of the chart that renders NOTES.txt as a manifest (helm template skips NOTES)."""
    copy_dir = os.path.join(tempfile.mkdtemp(prefix="switchyard-notes-"), "switchyard")
    shutil.copytree(chart, copy_dir)
    shutil.copy(os.path.join(chart, "templates", "NOTES.txt"), os.path.join(copy_dir, "files", "notes-preview.txt"))
    with open(os.path.join(copy_dir, "templates", "notes-preview.yaml"), "w") as f:
        f.write(NOTES_PREVIEW)
    return copy_dir


def check_notes(c, helm_bin, chart_copy, args, values):
    result = helm(helm_bin, "template", RELEASE, chart_copy, "--namespace", NAMESPACE,
                  "--show-only", "templates/notes-preview.yaml", *args)
    if not c.check(result.returncode == 0, "NOTES.txt renders", result.stderr.strip()[:200]):
        return
    notes = yaml.safe_load(result.stdout)["data"]["notes"]
    c.check(f"{RELEASE}-switchyard.{NAMESPACE}.svc:" in notes, "NOTES names the Service address")
    leaked = [label for label, value in secret_values(values) if value in notes]
    c.check(not leaked, "NOTES shows no secret value", str(leaked))
    if values["mode"] == "external":
        c.check("PostgreSQL" in notes, "NOTES says external mode needs the PostgreSQL-capable server")
    if values["tls"]["enabled"]:
        c.check(f"--target=localhost:{values['health']['port']}" in notes,
                "NOTES checks health through the plaintext health listener under TLS")


BAD_VALUES = [
    # (description, helm args, expected text in the error or None)
    ("mode=bogus", ["--set", "mode=bogus"], "mode"),
    ("replicaCount=0", ["--set", "replicaCount=0"], "replicaCount"),
    ("replicaCount=1.5", ["--set", "replicaCount=1.5"], "replicaCount"),
    ("a string gRPC port", ["--set-string", "server.grpcPort=abc"], "grpcPort"),
    ("an HTTP port above 65535", ["--set", "service.httpPort=70000"], "httpPort"),
    ("a health port of 0", ["--set", "health.port=0"], "port"),
    ("a numeric image.tag", ["--set", "image.tag=2"], "tag"),
    ("resources as a string", ["--set", "resources=big"], "resources"),
    ("an unknown top-level key", ["--set", "bogusKey=1"], "bogusKey"),
    ("an unknown nested key", ["--set", "server.bogus=1"], "bogus"),
    ("logLevel=verbose", ["--set", "server.logLevel=verbose"], "logLevel"),
    ("a bad duration", ["--set", "server.eventRetention=7days"], "eventRetention"),
    ("a malformed master keyring", ["--set", "secrets.masterKeyring=notakey"], "masterKeyring"),
    ("a malformed operator key", ["--set", "secrets.bootstrapOperatorKey=hunter2"], "bootstrapOperatorKey"),
    ("no master key at all (plain defaults)", ["--set", "secrets.masterKeyring="], "master keyring is required"),
    ("existingSecret without masterKeyringKey",
     ["--set", "secrets.existingSecret=keys", "--set", "secrets.masterKeyring=", "--set", "secrets.masterKeyringKey="],
     "masterKeyringKey"),
    ("existingSecret and a keyring in values", ["--set", "secrets.existingSecret=keys"], None),
    ("external mode without externalDatabase.url",
     ["--set", "mode=external", "--set", "secrets.databasePassword=pw"], None),
    ("external mode with a password in the URL",
     ["--set", "mode=external", "--set", "secrets.databasePassword=pw",
      "--set", "externalDatabase.url=postgresql://u:pw@db:5432/x"], None),
    ("external mode without a database password",
     ["--set", "mode=external", "--set", "externalDatabase.url=postgresql://u@db:5432/x"], "databasePassword"),
    ("a disruption budget with neither bound",
     ["--set", "mode=external", "--set", "secrets.databasePassword=pw",
      "--set", "externalDatabase.url=postgresql://u@db:5432/x",
      "--set", "podDisruptionBudget.maxUnavailable=null"], "minAvailable or maxUnavailable"),
    ("tls.enabled without tls.secretName", ["--set", "tls.enabled=true"], "secretName"),
    ("mutual TLS without TLS", ["--set", "tls.clientCA.enabled=true"], None),
    ("a grace period shorter than the drain",
     ["--set", "server.terminationGracePeriodSeconds=20"], "terminationGracePeriodSeconds"),
    ("gRPC and HTTP on the same port", ["--set", "server.httpPort=50051"], "must differ"),
    ("a secret-looking extra flag", ["--set", "server.extraFlags.api_secret=x"], "secret"),
    ("an extra flag the chart owns", ["--set", "server.extraFlags.listen=0.0.0.0:1"], "set by the chart"),
    ("one replica id for every pod", ["--set", "server.extraFlags.replica_id=x"], "cannot be used"),
    ("dev mode in a deployment", ["--set", "server.extraFlags.dev_mode=true"], "cannot be used"),
    ("a probe on an unknown health service", ["--set", "readinessProbe.service=foo"], "service"),
    ("a persistence size that is no quantity", ["--set", "persistence.size=ten"], "size"),
    ("a bad service type", ["--set", "service.type=Magic"], "type"),
    ("a webhook body limit above 3 MiB",
     ["--set", "server.webhooks.maxBodyBytes=4194304"], "maxBodyBytes"),
    ("a webhook rate of 0", ["--set", "server.webhooks.ratePerConnection=0"], "ratePerConnection"),
    ("a webhook rate that is no number", ["--set", "server.webhooks.ratePerConnection=fast"], "ratePerConnection"),
]

GOOD_KEYRING = "k1:IPgZzofJC2CDzgwVMLaeh+ixB5S4oIJWQFEd1p8LZGo="


def check_bad_values(c, helm_bin, chart):
    c.case = "bad values"
    print("[schema and chart checks reject bad values]")
    for what, args, expect in BAD_VALUES:
        full = ["--set", f"secrets.masterKeyring={GOOD_KEYRING}"] + args
        result = helm(helm_bin, "template", RELEASE, chart, "--namespace", NAMESPACE, *full)
        err = result.stderr.strip().splitlines()
        detail = (err[0] if err else "rendered without error")[:160]
        ok = result.returncode != 0 and (expect is None or expect in result.stderr)
        c.check(ok, f"helm template rejects {what}", "" if ok else detail)
    for what, args, _ in BAD_VALUES[:4]:
        full = ["--set", f"secrets.masterKeyring={GOOD_KEYRING}"] + args
        result = helm(helm_bin, "lint", chart, *full)
        c.check(result.returncode != 0, f"helm lint rejects {what}")
    # And the neighbours of the bad values pass.
    for what, args in [("replicaCount=1", ["--set", "replicaCount=1"]),
                       ("a quoted numeric image.tag", ["--set-string", "image.tag=2"]),
                       ("port 65535", ["--set", "service.httpPort=65535"]),
                       ("a fractional webhook rate given with --set", ["--set", "server.webhooks.ratePerConnection=2.5"]),
                       ("a grace period one second over the drain",
                        ["--set", "server.terminationGracePeriodSeconds=26"])]:
        full = ["--set", f"secrets.masterKeyring={GOOD_KEYRING}"] + args
        result = helm(helm_bin, "template", RELEASE, chart, "--namespace", NAMESPACE, *full)
        c.check(result.returncode == 0, f"helm template accepts {what}", result.stderr.strip()[:160])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", required=True)
    parser.add_argument("--chart", default=os.path.join(os.path.dirname(__file__), "..", "..", "helm", "switchyard"))
    opts = parser.parse_args()
    chart = os.path.normpath(opts.chart)
    c = Checker()
    with open(os.path.join(chart, "values.yaml")) as f:
        defaults = yaml.safe_load(f)

    cases = [("defaults + master key", None, {"secrets": {"masterKeyring": GOOD_KEYRING}})]
    ci_dir = os.path.join(chart, "ci")
    for name in sorted(os.listdir(ci_dir)):
        if name.endswith("-values.yaml"):
            with open(os.path.join(ci_dir, name)) as f:
                cases.append((f"ci/{name}", os.path.join(ci_dir, name), yaml.safe_load(f) or {}))
    # The external case once more with the default disruption budget (maxUnavailable).
    external = [case for case in cases if case[0] == "ci/external-values.yaml"]
    if external:
        _, path, override = external[0]
        cases.append(("ci/external-values.yaml, default budget", path,
                      deep_merge(override, {"podDisruptionBudget": {"minAvailable": None}})))
    modes = set()
    server_flags = read_server_flags(os.path.normpath(os.path.join(chart, "..", "..")))
    chart_copy = notes_chart(chart)
    for name, path, override in cases:
        c.case = name
        values = deep_merge(defaults, override)
        args = ["-f", path] if path else ["--set", f"secrets.masterKeyring={GOOD_KEYRING}"]
        if name.endswith("default budget"):
            args += ["--set", "podDisruptionBudget.minAvailable=null"]
        docs, out = render(opts.helm, chart, args)
        if not c.check(docs is not None, f"[{name}] helm template renders", (out or "")[:300]):
            continue
        modes.add(values["mode"])
        check_case(c, name, docs, values, chart, server_flags)
        check_notes(c, opts.helm, chart_copy, args, values)
    shutil.rmtree(os.path.dirname(chart_copy), ignore_errors=True)
    c.check(modes == {"embedded", "external"}, "the ci values cover both modes", str(modes))
    check_alert_file(c, chart)
    check_bad_values(c, opts.helm, chart)
    print(f"manifests: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
