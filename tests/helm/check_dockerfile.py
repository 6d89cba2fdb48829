#!/usr/bin/env python3
"""Checks that the Dockerfile builds like a developer machine and matches the Helm chart.

    check_dockerfile.py [--root REPO]

- the build stage is Debian 12 and installs only what scripts/bootstrap.sh installs (or runs it);
- it builds the way scripts/build.sh does (or runs it), and only targets CMake defines;
- the runtime stage is debian:12-slim, installs runtime libraries for the -dev packages the
  build links (checked with apt-cache where its package lists are present), no compilers;
- the binaries it copies are the add_executable targets of server/ and client/ at the paths
  CMake writes them to;
- its non-root user is the chart's runAsUser, its EXPOSEd ports the chart's default ports, its
  entrypoint the server with the chart's data directory;
- .dockerignore keeps build/ and .git out of the context.
Prints one line per check and exits 1 when any fails.
"""

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

# -dev packages of the libraries the programs link (CMakeLists.txt find_package) and a runtime
# package each must bring along.
LINKED_DEV_PACKAGES = ["libgrpc++-dev", "libprotobuf-dev", "libabsl-dev", "libssl-dev", "libsqlite3-dev",
                       "prometheus-cpp-dev", "libcurl4-openssl-dev", "libpq-dev", "libgoogle-perftools-dev"]
# Runtime package names that do not follow from the -dev package's name.
RUNTIME_PREFIXES = {"libgoogle-perftools-dev": ("libtcmalloc-minimal", "libgoogle-perftools")}
NOT_LIBRARIES = {"ca-certificates", "sqlite3", "tini", "tzdata"}


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))
        return ok


def logical_lines(text):
    """Dockerfile instructions with continuations joined and comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def parse_stages(text):
    stages = []
    for line in logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            name = words[words.index("AS") + 1] if "AS" in words else (
                words[words.index("as") + 1] if "as" in words else str(len(stages)))
            stages.append({"image": words[0], "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((instruction, rest.strip()))
    return stages


def run_commands(stage):
    """Shell commands of the RUN instructions, split on && and ;."""
    commands = []
    for instruction, rest in stage["instructions"]:
        if instruction != "RUN":
            continue
        rest = re.sub(r"^(--\S+\s+)+", "", rest)
        for part in re.split(r"&&|;|\|\|", rest):
            part = part.strip()
            if part:
                commands.append(part)
    return commands


def apt_installed(commands):
    packages = []
    for cmd in commands:
        words = shlex.split(cmd)
        words = [w for w in words if "=" not in w or w.startswith("-")]  # drop VAR=value prefixes
        if "apt-get" in words and "install" in words:
            after = words[words.index("install") + 1:]
            packages += [w for w in after if not w.startswith("-")]
    return packages


def bootstrap_packages(path):
    text = open(path).read()
    match = re.search(r"packages=\((.*?)\)", text, re.S)
    return match.group(1).split() if match else []


def cmake_executables(cmakelists):
    return re.findall(r"add_executable\(\s*([A-Za-z0-9_.+-]+)", open(cmakelists).read())


def apt_cache(*args):
    if not shutil.which("apt-cache"):
        return None
    result = subprocess.run(["apt-cache", *args], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def parse_depends(text):
    """{package: [direct Depends]} from the output of `apt-cache depends A B ...`."""
    out, current = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace():
            current = line.strip()
            out.setdefault(current, [])
        elif current and line.strip().startswith("Depends: "):
            out[current].append(line.split(":", 1)[1].strip())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    root = os.path.normpath(parser.parse_args().root)
    c = Checker()
    p = lambda *parts: os.path.join(root, *parts)

    stages = parse_stages(open(p("Dockerfile")).read())
    print(f"[Dockerfile] {len(stages)} stages: " + ", ".join(f"{s['name']} ({s['image']})" for s in stages))
    if not c.check(len(stages) >= 2, "multi-stage build"):
        return 1
    build, runtime = stages[0], stages[-1]
    c.check(build["image"] in ("debian:12", "debian:bookworm"), "build stage is debian:12", build["image"])
    c.check(runtime["image"] in ("debian:12-slim", "debian:bookworm-slim"), "runtime stage is debian:12-slim",
            runtime["image"])

    # --- build stage: packages ----------------------------------------------------------------
    bootstrap = bootstrap_packages(p("scripts", "bootstrap.sh"))
    c.check(len(bootstrap) > 0, f"scripts/bootstrap.sh lists {len(bootstrap)} packages")
    build_cmds = run_commands(build)
    runs_bootstrap = any(re.search(r"(^|[\s/])scripts/bootstrap\.sh\b", x) for x in build_cmds)
    copies_bootstrap = any(i == "COPY" and "scripts/bootstrap.sh" in r for i, r in build["instructions"])
    extra = [x for x in apt_installed(build_cmds) if x not in bootstrap]
    c.check(not extra, "build stage installs no package beyond scripts/bootstrap.sh"
            + (" (it runs scripts/bootstrap.sh)" if runs_bootstrap else ""), str(extra))
    if runs_bootstrap:
        c.check(copies_bootstrap, "scripts/bootstrap.sh is copied in before it runs")
    else:
        missing = [x for x in bootstrap if x not in apt_installed(build_cmds)]
        c.check(not missing, "build stage installs every package of scripts/bootstrap.sh", str(missing))

    # --- build stage: commands ----------------------------------------------------------------
    build_sh = open(p("scripts", "build.sh")).read()
    configure = re.search(r"^\s*(cmake -S .*)$", build_sh, re.M)
    c.check(configure is not None and "-G Ninja" in configure.group(1),
            "scripts/build.sh configures with cmake -G Ninja")
    build_sh_calls = [x for x in build_cmds if re.search(r"(^|[\s/])scripts/build\.sh\b", x)]
    targets_defined = set(cmake_executables(p("server", "CMakeLists.txt"))) | \
        set(cmake_executables(p("client", "CMakeLists.txt")))
    if build_sh_calls:
        c.check(True, "build stage runs scripts/build.sh itself")
        words = shlex.split(build_sh_calls[0])
        targets = []
        if "--target" in words:
            targets = [w for w in words[words.index("--target") + 1:] if not w.startswith("-")]
        c.check(set(targets) <= targets_defined, "scripts/build.sh --target names CMake executables",
                str(targets))
        c.check({"switchyard-server", "switchyardctl"} <= set(targets) or not targets,
                "the build includes switchyard-server and switchyardctl", str(targets))
    else:
        cmake_cfg = [x for x in build_cmds if x.startswith("cmake -S") or x.startswith("cmake -B")]
        c.check(bool(cmake_cfg) and configure is not None
                and set(shlex.split(configure.group(1))) <= set(shlex.split(cmake_cfg[0])),
                "build stage configures exactly like scripts/build.sh", str(cmake_cfg))
        c.check(any(x.startswith("cmake --build") for x in build_cmds), "build stage runs cmake --build")

    # --- binaries ------------------------------------------------------------------------------
    top = open(p("CMakeLists.txt")).read()
    expected = {}
    for directory in ("server", "client"):
        c.check(re.search(rf"add_subdirectory\(\s*{directory}\s*\)", top) is not None,
                f"CMakeLists.txt adds {directory}/")
        for exe in cmake_executables(p(directory, "CMakeLists.txt")):
            expected[exe] = f"build/{directory}/{exe}"
    c.check(expected.get("switchyard-server") == "build/server/switchyard-server",
            "server/CMakeLists.txt builds switchyard-server")
    c.check(expected.get("switchyardctl") == "build/client/switchyardctl",
            "client/CMakeLists.txt builds switchyardctl")
    build_text = " ".join(r for _, r in build["instructions"])
    for exe, path in expected.items():
        c.check(path in build_text, f"build stage takes {exe} from {path}, where CMake writes it")
    copied, dest = [], ""
    for instruction, rest in runtime["instructions"]:
        if instruction == "COPY" and f"--from={build['name']}" in rest:
            words = [w for w in rest.split() if not w.startswith("--")]
            copied += [os.path.basename(w) for w in words[:-1]]
            dest = words[-1]
    c.check(set(copied) == set(expected), "runtime stage copies exactly the CMake executables",
            f"{copied} vs {sorted(expected)}")

    # --- runtime stage -------------------------------------------------------------------------
    runtime_cmds = run_commands(runtime)
    runtime_pkgs = apt_installed(runtime_cmds)
    c.check(not [x for x in runtime_pkgs if x.endswith("-dev") or x in
                 ("build-essential", "cmake", "ninja-build", "clang", "g++", "gcc", "ccache")],
            "runtime stage installs no -dev package or compiler", str(runtime_pkgs))
    c.check(any("--no-install-recommends" in x for x in runtime_cmds if "apt-get" in x and "install" in x),
            "runtime apt-get install uses --no-install-recommends")
    c.check(any("rm -rf /var/lib/apt/lists" in x for x in runtime_cmds), "runtime stage drops the apt lists")
    c.check(all(x in bootstrap for x in LINKED_DEV_PACKAGES), "the linked -dev packages come from bootstrap.sh")
    show = apt_cache("show", "--no-all-versions", *runtime_pkgs) if runtime_pkgs else None
    if show is None:
        print("  skip  runtime packages against apt-cache (no apt package lists; run apt-get update)")
        for dev in LINKED_DEV_PACKAGES:
            base = dev[:-len("-dev")].replace("++", "")
            c.check(any(x.startswith(base) or x.startswith("lib" + base) or
                        x.startswith(base.replace("-openssl", "")) or
                        x.startswith(RUNTIME_PREFIXES.get(dev, (base,))) for x in runtime_pkgs),
                    f"a runtime package for {dev}")
    else:
        names = set(re.findall(r"^Package: (\S+)$", show, re.M))
        c.check(set(runtime_pkgs) <= names, "every runtime package exists in Debian 12",
                str(set(runtime_pkgs) - names))
        # One apt-cache call per level: it loads the whole package cache each time.
        depends = parse_depends(apt_cache("depends", "--no-recommends", "--no-suggests",
                                          *LINKED_DEV_PACKAGES) or "")
        allowed = set()
        for dev in LINKED_DEV_PACKAGES:
            libs = [d for d in depends.get(dev, []) if d.startswith("lib") and not d.endswith("-dev")]
            allowed |= set(libs)
            c.check(any(d in runtime_pkgs for d in libs), f"runtime stage installs the library of {dev}",
                    f"one of {libs}")
        # Libraries one level down (libgrpc++-dev -> libgrpc-dev -> libgrpc29) are allowed too.
        subs = sorted({d for dev in LINKED_DEV_PACKAGES for d in depends.get(dev, []) if d.endswith("-dev")})
        if subs:
            sub_depends = parse_depends(apt_cache("depends", "--no-recommends", "--no-suggests", *subs) or "")
            allowed |= {d for deps in sub_depends.values() for d in deps
                        if d.startswith("lib") and not d.endswith("-dev")}
        stray = [x for x in runtime_pkgs if x not in allowed and x not in NOT_LIBRARIES]
        c.check(not stray, "every runtime library belongs to a linked -dev package", str(stray))

    # --- user, ports, entrypoint against the chart -----------------------------------------------
    values = yaml.safe_load(open(p("helm", "switchyard", "values.yaml")))
    chart_uid = values["podSecurityContext"]["runAsUser"]
    c.check(values["securityContext"]["runAsUser"] == chart_uid, "chart pod and container runAsUser agree")
    users = [r for i, r in runtime["instructions"] if i == "USER"]
    c.check(bool(users), "runtime stage sets USER")
    if users:
        uid = users[-1].split(":")[0]
        c.check(uid == str(chart_uid), f"USER {users[-1]} is the chart's runAsUser {chart_uid}")
        c.check(uid.isdigit() and int(uid) != 0, "USER is a numeric non-root uid (runAsNonRoot can verify it)")
    useradd = [x for x in runtime_cmds if x.startswith("useradd")]
    c.check(any(f"--uid {chart_uid}" in x for x in useradd), f"useradd creates uid {chart_uid}")
    exposed = set()
    for i, r in runtime["instructions"]:
        if i == "EXPOSE":
            exposed |= {int(x.split("/")[0]) for x in r.split()}
    for key, port in (("server.grpcPort", values["server"]["grpcPort"]),
                      ("server.httpPort", values["server"]["httpPort"]),
                      ("health.port", values["health"]["port"])):
        c.check(port in exposed, f"EXPOSE includes the chart's {key} {port}", str(sorted(exposed)))
    entry = [r for i, r in runtime["instructions"] if i == "ENTRYPOINT"]
    c.check(bool(entry), "runtime stage has an ENTRYPOINT")
    if entry:
        try:
            argv = json.loads(entry[-1])
        except json.JSONDecodeError:
            argv = None
        c.check(isinstance(argv, list), "ENTRYPOINT is in exec form (the server gets SIGTERM)")
        if isinstance(argv, list):
            c.check(os.path.basename(argv[0]) == "switchyard-server"
                    and os.path.dirname(argv[0]) == dest.rstrip("/"),
                    "ENTRYPOINT runs the copied switchyard-server", argv[0])
            helpers = open(p("helm", "switchyard", "templates", "_helpers.tpl")).read()
            data_dir = re.search(r'define "switchyard.dataDir" -}}([^{]+){{', helpers).group(1)
            c.check(f"--data_dir={data_dir}" in argv, f"ENTRYPOINT passes --data_dir={data_dir}, the chart's",
                    str(argv))
    chart = yaml.safe_load(open(p("helm", "switchyard", "Chart.yaml")))
    version_args = [r for i, r in runtime["instructions"] if i == "ARG" and r.startswith("VERSION=")]
    if version_args:
        c.check(version_args[0].split("=", 1)[1] == str(chart["appVersion"]),
                "image VERSION is the chart's appVersion", version_args[0])
    project = re.search(r"project\(\s*switchyard\s+VERSION\s+([0-9.]+)", top)
    c.check(project is not None and project.group(1) == str(chart["appVersion"]),
            "chart appVersion is the CMake project version")

    # --- .dockerignore -----------------------------------------------------------------------------
    ignore = []
    if os.path.exists(p(".dockerignore")):
        ignore = [x.strip().strip("/") for x in open(p(".dockerignore"))
                  if x.strip() and not x.strip().startswith(("#", "!"))]
    for entry_ in ("build", ".git"):
        c.check(any(fnmatch.fnmatch(entry_, x) for x in ignore), f".dockerignore excludes {entry_}/")
    needed = ["CMakeLists.txt", "server", "client", "protos", "config", "scripts", "tests"]
    dropped = [n for n in needed if any(fnmatch.fnmatch(n, x) for x in ignore)]
    c.check(not dropped, ".dockerignore keeps what the CMake configure needs", str(dropped))

    print(f"dockerfile: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
