"""deploy/kubernetes, read statically (no cluster, no network): every object is valid against the
Kubernetes schemas kubernetes-validate ships (strict: an unknown or misspelt field fails), and the
manifests agree with each other, with the code and with docker/: selectors, ports, probes, Secret
and ConfigMap keys, the commands (parsed by the CLIs that will run them), the images (the names
the two Dockerfiles are built as), the compose file's processes and Rasa's endpoints file.

Each check returns the problems it finds, named; the tests below assert there are none, and
break a copy of the manifests (in memory and on disk) to show each check notices.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from bot.settings import PROJECT_ROOT, REQUIRED_IN_PRODUCTION, Settings

DEPLOY = PROJECT_ROOT / "deploy" / "kubernetes"
DOCKER = PROJECT_ROOT / "docker"
NAMESPACE = "wuye"
# The oldest Kubernetes the manifests are checked against, and the newest schemas shipped.
SCHEMA_VERSIONS = ("1.29", kubernetes_validate.latest_version())
SECRET, CONFIG, PROJECTS, ENDPOINTS = "wuye-secrets", "wuye-config", "wuye-projects", "wuye-rasa-endpoints"
COMPONENT = "app.kubernetes.io/component"
# Set on service containers besides what bot/settings.py reads (read-only root filesystem).
EXTRA_ENV = {"HOME", "XDG_CACHE_HOME"}

Body = dict[str, Any]


@dataclass(frozen=True)
class Doc:
    path: str  # relative to deploy/kubernetes
    body: Body

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name", ""))

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} {self.name}"


def load(root: Path = DEPLOY) -> list[Doc]:
    docs = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        for body in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if body:
                docs.append(Doc(path.relative_to(root).as_posix(), body))
    return docs


# --- reading the objects --------------------------------------------------------------------

def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.kind == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((doc for doc in of_kind(docs, kind) if doc.name == name), None)


def manifests(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc.kind != "Kustomization"]


def workloads(docs: list[Doc]) -> list[Doc]:
    return of_kind(docs, "Deployment") + of_kind(docs, "Job")


def pod_spec(doc: Doc) -> Body:
    return doc.body["spec"]["template"]["spec"]


def pod_labels(doc: Doc) -> dict[str, str]:
    return doc.body["spec"]["template"]["metadata"].get("labels", {})


def containers(doc: Doc, init: bool = True) -> list[Body]:
    spec = pod_spec(doc)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def selected(docs: list[Doc], selector: dict[str, str]) -> list[Doc]:
    return [doc for doc in of_kind(docs, "Deployment") if matches(selector, pod_labels(doc))]


def probes(container: Body) -> Iterator[tuple[str, Body]]:
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind in container:
            yield kind, container[kind]


def data_keys(doc: Doc | None) -> set[str]:
    if doc is None:
        return set()
    return set(doc.body.get("data") or {}) | set(doc.body.get("stringData") or {})


def env_names(docs: list[Doc], container: Body) -> set[str]:
    """Every variable the container gets: its env and whatever envFrom brings."""
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= data_keys(named(docs, "ConfigMap", source["configMapRef"]["name"]))
        if "secretRef" in source:
            names |= data_keys(named(docs, "Secret", source["secretRef"]["name"]))
    return names


def secret_keys_received(container: Body) -> set[str]:
    return {item["valueFrom"]["secretKeyRef"]["key"] for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})}


def config_value(docs: list[Doc], key: str) -> str | None:
    config = named(docs, "ConfigMap", CONFIG)
    return None if config is None else (config.body.get("data") or {}).get(key)


def port_declared(container: Body, port: int | str) -> bool:
    declared = container.get("ports", [])
    return any(port in (item.get("name"), item["containerPort"]) for item in declared)


def argv(container: Body) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def entry_point(command: list[str]) -> list[str]:
    """`python -m bot serve --host …` -> python -m bot serve; `python -m rasa_sdk --actions …` -> python -m rasa_sdk."""
    head = command[:3]
    if len(command) > 3 and not command[3].startswith("-"):
        head.append(command[3])
    return head


# --- what the repository says ---------------------------------------------------------------

def compose() -> Body:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))


def image_names() -> dict[str, str]:
    """Dockerfile -> the name it is built as (its header: `docker build -f docker/X.Dockerfile -t NAME .`)."""
    names = {}
    for dockerfile in sorted(DOCKER.glob("*.Dockerfile")):
        built = re.search(rf"docker build -f docker/{re.escape(dockerfile.name)} -t (\S+) \.",
                          dockerfile.read_text(encoding="utf-8"))
        assert built, f"{dockerfile.name} names no image (docker build … -t NAME)"
        names[f"docker/{dockerfile.name}"] = built.group(1)
    return names


def dockerfile_user(dockerfile: str) -> int:
    users = re.findall(r"^USER (\d+)$", (PROJECT_ROOT / dockerfile).read_text(encoding="utf-8"), re.MULTILINE)
    return int(users[-1])


def settings_variables() -> set[str]:
    """The environment variables bot/settings.py reads."""
    text = (PROJECT_ROOT / "bot" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r'env(?:\.get\(|\[)"([A-Z][A-Z0-9_]*)"', text))


def rasa_flags_in_use() -> set[str]:
    """The `rasa run` options this project already starts Rasa with: docker-compose.yml, the
    assistant image's CMD and bot/app/stack.py's start_rasa."""
    flags = {token for token in compose()["services"]["rasa"]["command"] if token.startswith("--")}
    flags |= set(re.findall(r"(--[a-z][a-z-]+)", (DOCKER / "assistant.Dockerfile").read_text(encoding="utf-8")
                            .split("\nCMD ")[1]))
    tree = ast.parse((PROJECT_ROOT / "bot" / "app" / "stack.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "start_rasa":
            flags |= {const.value for const in ast.walk(node) if isinstance(const, ast.Constant)
                      and isinstance(const.value, str) and const.value.startswith("--")}
    return flags


class _Parsed(Exception):
    pass


def parse_bot_cli(command: list[str]) -> argparse.Namespace | str:
    """What `python -m bot …` makes of these arguments (bot/app/cli.py's own parser, stopped right
    after parsing), or argparse's complaint."""
    from bot.app import cli
    parse_args = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        raise _Parsed(parse_args(self, args, namespace))

    stderr = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture), contextlib.redirect_stderr(stderr):
        try:
            cli.main(command)
        except _Parsed as parsed:
            return parsed.args[0]
        except SystemExit:
            return stderr.getvalue().strip().splitlines()[-1]
    return "the command ran instead of stopping after parsing"


def parse_rasa_sdk(command: list[str]) -> argparse.Namespace | str:
    from rasa_sdk.endpoint import create_argument_parser
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            return create_argument_parser().parse_args(command)
        except SystemExit:
            return stderr.getvalue().strip().splitlines()[-1]


# --- the checks: each returns its problems ---------------------------------------------------

@functools.lru_cache(maxsize=None)
def schema_problem(document: str, version: str) -> str | None:
    """Why kubernetes-validate refuses this object (JSON text, so unchanged ones are checked once)."""
    try:
        kubernetes_validate.validate(json.loads(document), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        return f"is not a valid {version} object at {where}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        return exc.message
    return None


def check_schemas(docs: list[Doc]) -> list[str]:
    problems = []
    for doc in manifests(docs):
        for version in SCHEMA_VERSIONS:
            problem = schema_problem(json.dumps(doc.body, sort_keys=True), version)
            if problem:
                problems.append(f"{doc} {problem}")
    return problems


def check_names_and_namespace(docs: list[Doc]) -> list[str]:
    problems = []
    seen: set[tuple[str, str]] = set()
    for doc in manifests(docs):
        if (doc.kind, doc.name) in seen:
            problems.append(f"{doc} is defined twice")
        seen.add((doc.kind, doc.name))
        namespace = doc.body["metadata"].get("namespace")
        if doc.kind == "Namespace":
            if doc.name != NAMESPACE:
                problems.append(f"{doc}: the namespace is {NAMESPACE}")
        elif namespace != NAMESPACE:
            problems.append(f"{doc} is in namespace {namespace!r}, not {NAMESPACE}")
    if not of_kind(docs, "Namespace"):
        problems.append(f"no Namespace {NAMESPACE}")
    return problems


def check_kustomization(docs: list[Doc]) -> list[str]:
    kustomizations = of_kind(docs, "Kustomization")
    if [doc.path for doc in kustomizations] != ["kustomization.yaml"]:
        return ["deploy/kubernetes needs exactly one kustomization.yaml, at its top"]
    body = kustomizations[0].body
    problems = []
    top_level = {doc.path for doc in manifests(docs) if "/" not in doc.path}
    listed = set(body.get("resources", []))
    if listed != top_level:
        problems.append(f"kustomization.yaml lists {sorted(listed)}, the directory has {sorted(top_level)}")
    if any("/" in resource for resource in listed):
        problems.append("kustomization.yaml must not apply templates/ (the real Secret and project files)")
    images = {image["name"]: image for image in body.get("images", [])}
    used = {container["image"] for doc in workloads(docs) for container in containers(doc)}
    if set(images) != used:
        problems.append(f"kustomization.yaml sets images {sorted(images)}, the containers use {sorted(used)}")
    tags = {image.get("newTag") for image in images.values()}
    if len(tags) != 1 or tags & {None, "", "latest"}:
        problems.append(f"both images are built from one commit: one release tag, not {sorted(map(str, tags))}")
    return problems


def check_selectors(docs: list[Doc]) -> list[str]:
    problems = []
    deployments = of_kind(docs, "Deployment")
    for doc in workloads(docs):
        labels = pod_labels(doc)
        if doc.kind == "Deployment":
            selector = doc.body["spec"]["selector"]
            if set(selector) != {"matchLabels"} or not matches(selector["matchLabels"], labels):
                problems.append(f"{doc}: selector {selector} does not match its pod labels {labels}")
            others = [other.name for other in deployments
                      if other is not doc and matches(selector.get("matchLabels", {}), pod_labels(other))]
            if others:
                problems.append(f"{doc}: selector also matches the pods of {others}")
        for constraint in pod_spec(doc).get("topologySpreadConstraints", []):
            if not matches(constraint["labelSelector"].get("matchLabels", {}), labels):
                problems.append(f"{doc}: topology spread selector does not match its own pods")
    for doc in of_kind(docs, "Service"):
        if len(selected(docs, doc.body["spec"].get("selector", {}))) != 1:
            problems.append(f"{doc}: selector {doc.body['spec'].get('selector')} matches no Deployment (or several)")
    for doc in of_kind(docs, "PodDisruptionBudget"):
        if len(selected(docs, doc.body["spec"]["selector"].get("matchLabels", {}))) != 1:
            problems.append(f"{doc}: selector matches no Deployment (or several)")
    for doc in of_kind(docs, "HorizontalPodAutoscaler"):
        target = doc.body["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or named(docs, "Deployment", target["name"]) is None:
            problems.append(f"{doc}: scales {target['kind']} {target['name']}, which is not here")
    for doc in of_kind(docs, "NetworkPolicy"):
        spec = doc.body["spec"]
        peers = [peer["podSelector"] for rule in spec.get("ingress", []) for peer in rule.get("from", [])
                 if "podSelector" in peer]
        for selector in ([spec["podSelector"]] if spec["podSelector"] else []) + peers:
            if not selected(docs, selector.get("matchLabels", {})):
                problems.append(f"{doc}: pod selector {selector} matches no Deployment")
    return problems


def check_ports_and_probes(docs: list[Doc]) -> list[str]:
    problems = []
    for doc in workloads(docs):
        for container in containers(doc):
            for kind, probe in probes(container):
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler in probe and not port_declared(container, probe[handler]["port"]):
                        problems.append(f"{doc}: {container['name']}'s {kind} probes port "
                                        f"{probe[handler]['port']!r}, which the container does not declare")
    for doc in of_kind(docs, "Service"):
        if doc.body["spec"].get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"{doc}: only ClusterIP Services; the Ingresses publish what is public")
        for deployment in selected(docs, doc.body["spec"].get("selector", {})):
            for port in doc.body["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if not any(port_declared(container, target) for container in containers(deployment, init=False)):
                    problems.append(f"{doc}: targetPort {target!r} is no port of {deployment.name}'s containers")
    for doc in of_kind(docs, "Ingress"):
        for rule in doc.body["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = named(docs, "Service", backend["name"])
                wanted = backend["port"].get("name", backend["port"].get("number"))
                if service is None or not any(wanted in (port.get("name"), port["port"])
                                              for port in service.body["spec"]["ports"]):
                    problems.append(f"{doc}: {path['path']} goes to Service {backend['name']} port {wanted!r}, "
                                    "which does not exist")
    for doc in of_kind(docs, "NetworkPolicy"):
        spec = doc.body["spec"]
        for deployment in selected(docs, spec["podSelector"].get("matchLabels", {})):
            for rule in spec.get("ingress", []):
                for port in rule.get("ports", []):
                    if not any(port_declared(container, port["port"]) for container in containers(deployment)):
                        problems.append(f"{doc}: allows port {port['port']!r}, which {deployment.name} does not have")
    return problems


def check_references(docs: list[Doc]) -> list[str]:
    """Every Secret and ConfigMap key, volume and $(VAR) a container refers to exists."""
    problems = []
    for doc in workloads(docs):
        spec = pod_spec(doc)
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            for kind, field, name_field in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                if field in volume:
                    source = named(docs, kind, volume[field][name_field])
                    if source is None:
                        problems.append(f"{doc}: volume {volume['name']} mounts {kind} "
                                        f"{volume[field][name_field]}, which is not here")
                    for item in volume[field].get("items", []):
                        if item["key"] not in data_keys(source):
                            problems.append(f"{doc}: volume {volume['name']} wants key {item['key']}, "
                                            f"which {kind} {volume[field][name_field]} does not have")
        for container in containers(doc):
            where = f"{doc}: {container['name']}"
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{where} mounts volume {mount['name']}, which the pod does not have")
            for item in container.get("env", []):
                for ref_kind, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = item.get("valueFrom", {}).get(ref_kind)
                    if ref and ref["key"] not in data_keys(named(docs, kind, ref["name"])):
                        problems.append(f"{where}: {item['name']} comes from key {ref['key']} of {kind} "
                                        f"{ref['name']}, which has no such key (or is not here)")
            for source in container.get("envFrom", []):
                for ref_kind, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if ref_kind in source and named(docs, kind, source[ref_kind]["name"]) is None:
                        problems.append(f"{where}: envFrom {kind} {source[ref_kind]['name']}, which is not here")
            for variable in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(argv(container))):
                if variable not in env_names(docs, container):
                    problems.append(f"{where}: the command uses $({variable}), which its environment does not set")
    return problems


def check_commands(docs: list[Doc]) -> list[str]:
    """Each container's command and exec probe is one this project has: `python -m bot <command>`
    as bot/app/cli.py parses it, the action server as rasa_sdk parses it, `rasa run` with options
    the project already uses; and the ports they listen on are the ones declared."""
    problems = []
    rasa_flags = rasa_flags_in_use()
    for doc in workloads(docs):
        for container in containers(doc):
            where = f"{doc}: {container['name']}"
            command = argv(container)
            if not command:
                problems.append(f"{where} has no command (say which process it is, do not rely on the image's CMD)")
                continue
            execs = [probe["exec"]["command"] for _, probe in probes(container) if "exec" in probe]
            for run in [command, *execs]:
                problems += [f"{where}: {problem}" for problem in check_command(run, container, rasa_flags)]
    return problems


def check_command(command: list[str], container: Body, rasa_flags: set[str]) -> list[str]:
    if command[:2] != ["python", "-m"] or len(command) < 3:
        return [f"{command} is not `python -m <module> …`"]
    module, args = command[2], command[3:]
    if module == "bot":
        parsed = parse_bot_cli(args)
        if isinstance(parsed, str):
            return [f"`python -m bot {' '.join(args)}` is refused by bot/app/cli.py: {parsed}"]
        problems = []
        if parsed.command == "serve":
            defaults = Settings()
            for flag, port in (("--port", parsed.port or defaults.gateway_port),
                               ("--staff-port", parsed.staff_port or defaults.staff_port)):
                if not port_declared(container, port):
                    problems.append(f"serve listens on {port} ({flag}), which the container does not declare")
            if parsed.host in (None, "127.0.0.1") or parsed.staff_host in (None, "127.0.0.1"):
                problems.append("serve must listen on the pod's interfaces (--host/--staff-host 0.0.0.0)")
        return problems
    if module == "rasa_sdk":
        parsed = parse_rasa_sdk(args)
        if isinstance(parsed, str):
            return [f"`python -m rasa_sdk {' '.join(args)}` is refused by rasa_sdk: {parsed}"]
        package = PROJECT_ROOT / parsed.actions.replace(".", "/")
        problems = [] if (package / "__init__.py").exists() or package.with_suffix(".py").exists() \
            else [f"--actions {parsed.actions} is no module of the repository"]
        if not port_declared(container, parsed.port):
            problems.append(f"the action server listens on {parsed.port}, which the container does not declare")
        return problems
    if module in ("rasa", "bot.rasa_run"):  # bot.rasa_run: `rasa run` with the same arguments
        if args[:1] != ["run"]:
            return [f"`python -m {module} {' '.join(args)}`: only `rasa run` is served"]
        problems = [f"`rasa run {flag}` is an option the project never starts Rasa with"
                    for flag in args if flag.startswith("--") and flag not in rasa_flags]
        if "--enable-api" in args and "--auth-token" not in args:
            problems.append("Rasa's HTTP API without --auth-token")
        if "--auth-token" in args and not args[args.index("--auth-token") + 1].startswith("$("):
            problems.append("--auth-token must be $(RASA_AUTH_TOKEN) from the Secret, never a literal")
        port = int(args[args.index("--port") + 1]) if "--port" in args else 5005
        if not port_declared(container, port):
            problems.append(f"Rasa listens on {port}, which the container does not declare")
        return problems
    return [f"python -m {module}: no such entry point here (bot, rasa_sdk, rasa, bot.rasa_run)"]


def check_images_and_compose(docs: list[Doc]) -> list[str]:
    """Each workload is a docker-compose service (its component label), runs the same entry point
    from the image of the same Dockerfile, holds no secret compose does not give it, and runs as
    the image's user."""
    problems = []
    services = compose()["services"]
    names = image_names()
    service_image = names["docker/service.Dockerfile"]
    for doc in workloads(docs):
        twin = services.get(pod_labels(doc).get(COMPONENT, ""))
        if twin is None or "build" not in twin:
            problems.append(f"{doc}: its {COMPONENT} label names no service of docker/docker-compose.yml")
            continue
        dockerfile = twin["build"]["dockerfile"]
        image = names[dockerfile]
        main, *others = containers(doc, init=False)
        if others:
            problems.append(f"{doc}: one container a pod (sidecars: say why here first)")
        if main["image"] != image:
            problems.append(f"{doc}: {main['name']} runs image {main['image']}; compose builds it from "
                            f"{dockerfile}, which is {image}")
        for init in pod_spec(doc).get("initContainers", []):
            if init["image"] != service_image:
                problems.append(f"{doc}: init container {init['name']} runs the CLI: image {service_image}")
        if entry_point(argv(main)) != entry_point(twin["command"]):
            problems.append(f"{doc}: {main['name']} runs {entry_point(argv(main))}, compose's {twin['command'][:4]}")
        given = set(twin.get("environment") or {}) | set(re.findall(r"\$\{([A-Z_]+)", " ".join(twin["command"])))
        extra = secret_keys_received(main) - given
        if extra:
            problems.append(f"{doc}: {main['name']} gets secrets {sorted(extra)} that compose does not give it")
        user = pod_spec(doc).get("securityContext", {}).get("runAsUser")
        if user != dockerfile_user(dockerfile):
            problems.append(f"{doc}: runs as user {user}, the image's USER is {dockerfile_user(dockerfile)}")
    return problems


def check_security(docs: list[Doc]) -> list[str]:
    problems = []
    namespace = named(docs, "Namespace", NAMESPACE)
    if namespace is None or namespace.body["metadata"].get("labels", {}).get(
            "pod-security.kubernetes.io/enforce") != "restricted":
        problems.append(f"Namespace {NAMESPACE} must enforce the restricted Pod Security Standard")
    for doc in workloads(docs):
        spec = pod_spec(doc)
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True or pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{doc}: the pod needs runAsNonRoot and the RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{doc}: nothing here talks to the Kubernetes API: automountServiceAccountToken false")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append(f"{doc}: no host namespaces")
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in containers(doc):
            where = f"{doc}: {container['name']}"
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False or context.get("privileged"):
                problems.append(f"{where}: allowPrivilegeEscalation false, never privileged")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: read-only root filesystem")
            if "ALL" not in context.get("capabilities", {}).get("drop", []) or context.get("capabilities", {}).get(
                    "add"):
                problems.append(f"{where}: drop ALL capabilities, add none")
            tmp = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == "/tmp"]
            if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{where}: a read-only root needs an emptyDir at /tmp")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})) or "memory" not in resources.get(
                    "limits", {}):
                problems.append(f"{where}: cpu and memory requests and a memory limit")
            if ":" in container["image"] or "/" in container["image"]:
                problems.append(f"{where}: image {container['image']}: registry and tag belong in kustomization.yaml")
    return problems


def check_scaling(docs: list[Doc]) -> list[str]:
    """Replicas: the staff bot exactly one and never two at once; the autoscaled Deployments leave
    `replicas` to their HPA; every PodDisruptionBudget still lets a node be drained."""
    problems = []
    autoscaled = {doc.body["spec"]["scaleTargetRef"]["name"]: doc.body["spec"]
                  for doc in of_kind(docs, "HorizontalPodAutoscaler")}
    for name in ("gateway", "actions", "rasa"):
        if name not in autoscaled:
            problems.append(f"Deployment {name} has no HorizontalPodAutoscaler")
        elif autoscaled[name].get("minReplicas", 1) < 2:
            problems.append(f"Deployment {name}: at least 2 replicas (HPA minReplicas)")
    for doc in of_kind(docs, "Deployment"):
        spec = doc.body["spec"]
        if doc.name in autoscaled:
            if "replicas" in spec:
                problems.append(f"{doc}: its HPA owns replicas; re-applying the file would reset them")
            hpa = autoscaled[doc.name]
            if any(metric.get("resource", {}).get("name") == "cpu" for metric in hpa.get("metrics", [])) and not all(
                    "cpu" in container.get("resources", {}).get("requests", {}) for container in containers(doc)):
                problems.append(f"{doc}: a CPU utilisation target needs CPU requests")
        elif "replicas" not in spec:
            problems.append(f"{doc}: say how many replicas (or give it an HPA)")
    staffbot = named(docs, "Deployment", "staffbot")
    if staffbot is None or staffbot.body["spec"].get("replicas") != 1 or staffbot.body["spec"].get(
            "strategy", {}).get("type") != "Recreate" or "staffbot" in autoscaled:
        problems.append("Deployment staffbot: exactly 1 replica, strategy Recreate, no HPA (one Telegram poller)")
    for doc in of_kind(docs, "PodDisruptionBudget"):
        spec = doc.body["spec"]
        for deployment in selected(docs, spec["selector"].get("matchLabels", {})):
            fewest = autoscaled.get(deployment.name, {}).get("minReplicas") or deployment.body["spec"].get(
                "replicas", 1)
            if "minAvailable" in spec and spec["minAvailable"] >= fewest:
                problems.append(f"{doc}: minAvailable {spec['minAvailable']} of {fewest} pods blocks every drain")
            if spec.get("maxUnavailable") == 0:
                problems.append(f"{doc}: maxUnavailable 0 blocks every drain")
    return problems


def check_migration(docs: list[Doc]) -> list[str]:
    problems = []
    jobs = [doc for doc in of_kind(docs, "Job") if entry_point(argv(containers(doc, init=False)[0]))
            == ["python", "-m", "bot", "migrate"]]
    if len(jobs) != 1:
        problems.append("one Job runs `python -m bot migrate`")
    for doc in jobs:
        if pod_spec(doc).get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(f"{doc}: a one-shot pod")
    for doc in of_kind(docs, "Deployment"):
        main = containers(doc, init=False)[0]
        if argv(main)[2:3] in (["bot"], ["rasa_sdk"]):  # the service code: the ticket store's schema
            checks = [argv(init) for init in pod_spec(doc).get("initContainers", [])]
            if ["python", "-m", "bot", "migrate", "--check"] not in checks:
                problems.append(f"{doc}: new pods wait for the migration (init container `bot migrate --check`)")
    return problems


def check_configuration(docs: list[Doc]) -> list[str]:
    """The ConfigMaps and the Secret template: no real secret, no unused or misspelt key, every
    in-cluster URL a Service here, everything a production process needs, Rasa's endpoints as in
    docker/endpoints.prod.yml."""
    problems = []
    secret = named(docs, "Secret", SECRET)
    config = named(docs, "ConfigMap", CONFIG)
    if secret is None or config is None:
        return [f"Secret {SECRET} (template) and ConfigMap {CONFIG} are needed"]
    if secret.path.split("/")[0] != "templates" or (secret.body.get("data") or {}):
        problems.append(f"{secret}: a template under templates/, with stringData only")
    for key, value in (secret.body.get("stringData") or {}).items():
        if value != "":
            problems.append(f"{secret}: {key} has a value; the template holds names only")
    every = [container for doc in workloads(docs) for container in containers(doc)]
    referenced = {ref["key"] for container in every for item in container.get("env", [])
                  for ref in [item.get("valueFrom", {}).get("secretKeyRef"), item.get("valueFrom", {}).get(
                      "configMapKeyRef")] if ref}
    known = settings_variables() | EXTRA_ENV | referenced
    for key in data_keys(secret) | data_keys(config):
        if key not in known:
            problems.append(f"{key} is neither read by bot/settings.py nor referenced by any container")
    for key, value in (config.body.get("data") or {}).items():
        for host, port in re.findall(r"^https?://([a-z0-9-]+):(\d+)", value):
            service = named(docs, "Service", host)
            if service is None or int(port) not in [item["port"] for item in service.body["spec"]["ports"]]:
                problems.append(f"{CONFIG} {key}={value}: no Service {host} with port {port} here")
    for process, component in (("serve", "gateway"), ("worker", "worker")):
        deployment = named(docs, "Deployment", component)
        if deployment is None:
            problems.append(f"no Deployment {component}")
            continue
        needed = {name.upper() for name in REQUIRED_IN_PRODUCTION[process]}
        missing = needed - env_names(docs, containers(deployment, init=False)[0])
        if missing:
            problems.append(f"{deployment}: `{process}` refuses to start in production without {sorted(missing)}")
    for doc in workloads(docs):
        for container in containers(doc):
            projects_dir = config_value(docs, "PROJECTS_DIR") if CONFIG in [
                source.get("configMapRef", {}).get("name") for source in container.get("envFrom", [])] else None
            if projects_dir and not any(mount["mountPath"] == projects_dir for mount in container.get("volumeMounts", [])):
                problems.append(f"{doc}: {container['name']} reads PROJECTS_DIR={projects_dir} but mounts nothing there")
    problems += check_rasa_endpoints(docs)
    return problems


def check_rasa_endpoints(docs: list[Doc]) -> list[str]:
    endpoints = named(docs, "ConfigMap", ENDPOINTS)
    if endpoints is None:
        return [f"no ConfigMap {ENDPOINTS}"]
    text = endpoints.body["data"].get("endpoints.yml", "")
    expected = (DOCKER / "endpoints.prod.yml").read_text(encoding="utf-8")
    problems = []
    if yaml.safe_load(text) != yaml.safe_load(expected):
        problems.append(f"{endpoints}: endpoints.yml differs from docker/endpoints.prod.yml")
    rasa = named(docs, "Deployment", "rasa")
    if rasa is None:
        return [*problems, "no Deployment rasa"]
    container = containers(rasa, init=False)[0]
    for variable in sorted(set(re.findall(r"\$\{([A-Z_]+)\}", text)) - env_names(docs, container)):
        problems.append(f"{rasa}: its endpoints use ${{{variable}}}, which its environment does not set")
    command = argv(container)
    path = command[command.index("--endpoints") + 1] if "--endpoints" in command else ""
    volumes = {volume["name"]: volume for volume in pod_spec(rasa).get("volumes", [])}
    mounted = {f"{mount['mountPath']}/{item['path']}"
               for mount in container.get("volumeMounts", [])
               for item in volumes.get(mount["name"], {}).get("configMap", {}).get("items", [])
               if volumes[mount["name"]]["configMap"]["name"] == ENDPOINTS}
    if path not in mounted:
        problems.append(f"{rasa}: --endpoints {path!r} is not where {ENDPOINTS} is mounted ({sorted(mounted)})")
    return problems


def check_ingress(docs: list[Doc]) -> list[str]:
    """The public Ingress carries /wechat to the WeChat listener and nothing else, pinning a resident
    to one gateway pod; the staff listener only behind another (internal) ingress class."""
    problems = []
    routes: dict[str, set[tuple[str, str, str]]] = {}
    classes = {}
    for doc in of_kind(docs, "Ingress"):
        classes[doc.name] = doc.body["spec"].get("ingressClassName")
        routes[doc.name] = {(path["path"], path["pathType"], path["backend"]["service"]["name"])
                            for rule in doc.body["spec"]["rules"] for path in rule["http"]["paths"]}
    if routes.get("wechat") != {("/wechat", "Exact", "gateway-public")}:
        problems.append(f"Ingress wechat must route exactly /wechat to gateway-public, not {routes.get('wechat')}")
    for name, paths in routes.items():
        if name != "wechat" and any(service == "gateway-public" for *_, service in paths):
            problems.append(f"Ingress {name}: the WeChat listener is published by Ingress wechat only")
        if any(service == "gateway-staff" for *_, service in paths) and classes[name] == classes.get("wechat"):
            problems.append(f"Ingress {name}: the staff listener never on the public ingress class")
    wechat = named(docs, "Ingress", "wechat")
    if wechat and wechat.body["metadata"].get("annotations", {}).get(
            "nginx.ingress.kubernetes.io/upstream-hash-by") != "$arg_openid":
        problems.append("Ingress wechat: pin each resident to one gateway pod (hash on $arg_openid): the gateway "
                        "serialises a resident's messages per pod, which is what keeps two Rasa replicas off one "
                        "conversation (RasaHQ/rasa#9213)")
    return problems


CHECKS: list[Callable[[list[Doc]], list[str]]] = [
    check_schemas, check_names_and_namespace, check_kustomization, check_selectors, check_ports_and_probes,
    check_references, check_commands, check_images_and_compose, check_security, check_scaling,
    check_migration, check_configuration, check_ingress,
]


# --- the tests ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return load()


def test_the_directory_holds_the_whole_deployment(docs):
    kinds = {(doc.kind, doc.name) for doc in docs}
    for name in ("gateway", "worker", "staffbot", "actions", "rasa"):
        assert ("Deployment", name) in kinds, name
    assert {("Service", name) for name in ("gateway-public", "gateway-staff", "actions", "rasa")} <= kinds
    assert {("Job", "migrate"), ("Secret", SECRET), ("ConfigMap", CONFIG), ("ConfigMap", PROJECTS),
            ("ConfigMap", ENDPOINTS), ("Namespace", NAMESPACE)} <= kinds
    # Managed services, referenced through the Secret: nothing here runs PostgreSQL or Redis.
    images = " ".join(container["image"] for doc in workloads(docs) for container in containers(doc))
    assert "postgres" not in images and "redis" not in images


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_the_manifests_pass(check, docs):
    assert check(docs) == []


def test_the_project_files_in_the_configmap_load(docs, tmp_path):
    from bot.core.company import load_company
    projects = named(docs, "ConfigMap", PROJECTS)
    assert projects is not None
    for key, text in (projects.body.get("data") or {}).items():
        assert key.endswith(".yml"), key
        (tmp_path / key).write_text(text, encoding="utf-8")
    load_company(Settings().project_config, tmp_path)  # raises on a file the gateway would refuse


def test_kustomize_renders_the_directory_when_kubectl_is_here():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on this machine (the checks above read the files themselves)")
    import subprocess
    rendered = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    images = set(re.findall(r"image: (\S+)", rendered.stdout))
    assert images == {"registry.example.com/wuye/wuye-service:RELEASE_TAG",
                      "registry.example.com/wuye/wuye-assistant:RELEASE_TAG"}
    assert "kind: Secret" not in rendered.stdout  # the template is never applied


# --- and each check notices a broken manifest ----------------------------------------------------

def edit(docs: list[Doc], kind: str, name: str, change: Callable[[Body], Any]) -> list[Doc]:
    broken = copy.deepcopy(docs)
    target = named(broken, kind, name)
    assert target is not None, (kind, name)
    change(target.body)
    return broken


def container_of(body: Body, name: str | None = None) -> Body:
    spec = body["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if name in (None, c["name"]))


def env_item(body: Body, variable: str) -> Body:
    return next(item for item in container_of(body)["env"] if item["name"] == variable)


BREAKAGES: list[tuple[str, str, str, Callable[[Body], Any], Callable[[list[Doc]], list[str]], str]] = [
    ("misspelt field", "Deployment", "worker", lambda b: b["spec"].update(replicaz=2), check_schemas, "replicaz"),
    ("wrong type", "Service", "rasa", lambda b: b["spec"]["ports"][0].update(port="5005"), check_schemas,
     "not of type 'integer'"),
    ("service selects nothing", "Service", "rasa", lambda b: b["spec"]["selector"].update({COMPONENT: "rasa-x"}),
     check_selectors, "Service rasa"),
    ("pods outside their selector", "Deployment", "gateway",
     lambda b: b["spec"]["template"]["metadata"]["labels"].update({COMPONENT: "gw"}), check_selectors,
     "does not match its pod labels"),
    ("unknown secret key", "Deployment", "gateway",
     lambda b: env_item(b, "DATABASE_URL")["valueFrom"]["secretKeyRef"].update(key="DATABASE_URI"),
     check_references, "DATABASE_URI"),
    ("unknown config key", "Deployment", "rasa",
     lambda b: env_item(b, "TRACKER_DB_HOST")["valueFrom"]["configMapKeyRef"].update(key="TRACKER_HOST"),
     check_references, "TRACKER_HOST"),
    ("token variable not set", "Deployment", "rasa",
     lambda b: container_of(b).update(command=[t.replace("RASA_AUTH_TOKEN", "RASA_TOKEN")
                                               for t in container_of(b)["command"]]),
     check_references, "$(RASA_TOKEN)"),
    ("no such subcommand", "Deployment", "worker", lambda b: container_of(b).update(command=[
        "python", "-m", "bot", "workers"]), check_commands, "refused by bot/app/cli.py"),
    ("no such option", "Deployment", "gateway", lambda b: container_of(b)["command"].append("--workers"),
     check_commands, "unrecognized arguments"),
    ("serve on another port", "Deployment", "gateway",
     lambda b: container_of(b)["command"].__setitem__(7, "9090"), check_commands, "listens on 9090"),
    ("literal rasa token", "Deployment", "rasa",
     lambda b: container_of(b)["command"].__setitem__(6, "s3cret"), check_commands, "never a literal"),
    ("probe on an undeclared port", "Deployment", "gateway",
     lambda b: container_of(b)["readinessProbe"]["httpGet"].update(port="public"), check_ports_and_probes,
     "'public'"),
    ("service to a missing port", "Service", "gateway-staff",
     lambda b: b["spec"]["ports"][0].update(targetPort=9999), check_ports_and_probes, "targetPort 9999"),
    ("rasa from the service image", "Deployment", "rasa", lambda b: container_of(b).update(image="wuye-service"),
     check_images_and_compose, "which is wuye-assistant"),
    ("a secret compose withholds", "Deployment", "actions", lambda b: container_of(b)["env"].append(
        {"name": "WECHAT_APP_SECRET", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "WECHAT_APP_SECRET"}}}),
     check_images_and_compose, "WECHAT_APP_SECRET"),
    ("writable root", "Deployment", "worker",
     lambda b: container_of(b)["securityContext"].update(readOnlyRootFilesystem=False), check_security,
     "read-only root"),
    ("two staff bots", "Deployment", "staffbot", lambda b: b["spec"].update(replicas=2), check_scaling,
     "staffbot"),
    ("HPA fighting the manifest", "Deployment", "gateway", lambda b: b["spec"].update(replicas=2), check_scaling,
     "HPA owns replicas"),
    ("no wait for the migration", "Deployment", "gateway", lambda b: b["spec"]["template"]["spec"].pop(
        "initContainers"), check_migration, "wait for the migration"),
    ("a real secret in the template", "Secret", SECRET, lambda b: b["stringData"].update(RASA_AUTH_TOKEN="hunter2"),
     check_configuration, "RASA_AUTH_TOKEN has a value"),
    ("misspelt setting", "ConfigMap", CONFIG, lambda b: b["data"].update(RASA_ULR="http://rasa:5005"),
     check_configuration, "RASA_ULR"),
    ("URL to no service", "ConfigMap", CONFIG, lambda b: b["data"].update(RASA_URL="http://rasa-server:5005"),
     check_configuration, "no Service rasa-server"),
    ("endpoints drifted", "ConfigMap", ENDPOINTS,
     lambda b: b["data"].update({"endpoints.yml": b["data"]["endpoints.yml"].replace("type: redis", "type: in_memory")}),
     check_configuration, "differs from docker/endpoints.prod.yml"),
    ("staff route on the public ingress", "Ingress", "wechat",
     lambda b: b["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(name="gateway-staff"),
     check_ingress, "exactly /wechat"),
    ("residents not pinned", "Ingress", "wechat", lambda b: b["metadata"].pop("annotations"), check_ingress,
     "rasa#9213"),
    ("template applied by kustomize", "Kustomization", "",
     lambda b: b["resources"].append("templates/secret.example.yaml"), check_kustomization, "templates/"),
]


@pytest.mark.parametrize("kind,name,change,check,expected", [case[1:] for case in BREAKAGES],
                         ids=[case[0] for case in BREAKAGES])
def test_each_check_rejects_a_broken_manifest(docs, kind, name, change, check, expected):
    problems = check(edit(docs, kind, name, change))
    assert any(expected in problem for problem in problems), problems


def test_a_broken_copy_of_the_directory_is_rejected(tmp_path):
    copy_dir = tmp_path / "kubernetes"
    shutil.copytree(DEPLOY, copy_dir)
    gateway = copy_dir / "gateway.yaml"
    text = gateway.read_text(encoding="utf-8")
    # A typo in a field name and a probe pointed at the wrong listener name, as an edit might make them.
    gateway.write_text(text.replace("readinessProbe:\n            httpGet: {path: /healthz, port: wechat}",
                                    "readinessProbe:\n            httpGet: {path: /healthz, port: public}")
                       .replace("terminationGracePeriodSeconds", "terminationGracePeriod"), encoding="utf-8")
    broken = load(copy_dir)
    assert broken != load()
    assert any("terminationGracePeriod" in problem for problem in check_schemas(broken))
    assert any("'public'" in problem for problem in check_ports_and_probes(broken))
