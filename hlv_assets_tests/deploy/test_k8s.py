"""GPU steps on Kubernetes without a cluster: the pod spec rendered from config, and `GPULauncher` in `k8s`
mode driving the real `PipesK8sClient` against a fake CoreV1Api whose "pods" run their command locally (so
the Pipes protocol really travels through pod logs); plus `local` mode and the deploy files' consistency."""

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import dagster_k8s.pipes as dagster_k8s_pipes  # a dependency: missing, these tests fail rather than skip
import kubernetes
import pytest
import yaml

from hlv_assets.defs.gpu import CONTAINER_NAME, GPULauncher, gpu_pod_spec
from hlv_assets.lib.paths import REPO_ROOT

# A GPU step as the training entry point would be: only dagster-pipes, reports what it saw.
STEP = textwrap.dedent("""
    import os, sys
    from dagster_pipes import open_dagster_pipes
    with open_dagster_pipes() as pipes:
        pipes.log.info("gpu step started")
        print("plain stdout line from the step")
        if pipes.extras.get("fail"):
            sys.exit(3)
        pipes.report_asset_materialization(metadata={
            "profile": os.environ.get("HLV_PROFILE", ""),
            "hlv_home": os.environ.get("HLV_HOME", ""),
            "seed": pipes.extras["seed"],
        })
""")


def _launcher(**overrides) -> GPULauncher:
    settings = dict(mode="k8s", image="registry.example/hlv-assets:1.2.3", namespace="hlv", gpu_count=2,
                    node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, secret_name="hlv-secrets",
                    data_claim="hlv-data", poll_interval=0.01)
    return GPULauncher(**{**settings, **overrides})


def test_pod_spec_rendered_from_config():
    command = ["python", "-m", "hlv_assets.lib.train_entry", "--config", "/data/cfg.json", "--out", "/data/out"]
    spec = gpu_pod_spec(_launcher(), command)
    (container,) = spec["containers"]
    assert container["name"] == CONTAINER_NAME and container["image"] == "registry.example/hlv-assets:1.2.3"
    assert container["command"] == command
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in container["resources"]["requests"]  # extended resource: limit only
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "32Gi"}
    assert container["envFrom"] == [{"secretRef": {"name": "hlv-secrets"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HLV_HOME"] == "/data/hlv" and env["HLV_DATA_DIR"] == "/data/raw" and env["HF_HUB_OFFLINE"] == "1"
    assert {"name": "hlv-data", "mountPath": "/data"} in container["volumeMounts"]
    assert {"name": "hlv-data", "persistentVolumeClaim": {"claimName": "hlv-data"}} in spec["volumes"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in spec["volumes"]
    assert spec["restartPolicy"] == "Never"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    # What PipesK8sClient makes of it is a valid V1Pod that still asks for the GPUs and mounts the data.
    pod = dagster_k8s_pipes.build_pod_body(pod_name="p", image=None, command=None, env_vars={"X": "1"},
                                           base_pod_meta=None, base_pod_spec=spec)
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(pod)
    (rendered,) = manifest["spec"]["containers"]
    assert rendered["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert rendered["envFrom"][0]["secretRef"]["name"] == "hlv-secrets"
    assert manifest["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "hlv-data"
    assert {"name": "X", "value": "1"} in rendered["env"]


def test_pod_spec_without_gpu_secret_or_volume():
    spec = gpu_pod_spec(_launcher(gpu_count=0, secret_name=None, data_claim=None, shm_size=None,
                                  node_selector={}), ["python", "-V"])
    (container,) = spec["containers"]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert "envFrom" not in container and not container["volumeMounts"] and not spec["volumes"]
    assert "tolerations" not in spec and "nodeSelector" not in spec


def _timestamps():
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for i in range(1_000_000):
        yield (start + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _LogResponse(bytes):
    """A urllib3 response as `read_namespaced_pod_log(_preload_content=False)` gives it: chunks, `.data`."""

    @property
    def data(self) -> bytes:
        return bytes(self)

    def __iter__(self):
        yield bytes(self)

    def stream(self, *_args, **_kwargs):
        yield bytes(self)


class FakeCoreV1Api:
    """The slice of `kubernetes.client.CoreV1Api` that PipesK8sClient uses; a created pod runs its first
    container's command here, with only the pod's own environment, and its output becomes the pod log."""

    def __init__(self):
        self.created: list[tuple[str, object]] = []
        self.deleted: list[tuple[str, str]] = []
        self._pods: dict[str, tuple[int, list[str]]] = {}

    def create_namespaced_pod(self, namespace, body):
        self.created.append((namespace, body))
        container = body.spec.containers[0]
        env = {e.name: e.value for e in container.env or [] if e.value is not None}
        env["PATH"] = "/usr/bin:/bin"
        proc = subprocess.run(container.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)
        self._pods[body.metadata.name] = (proc.returncode, proc.stdout.splitlines())

    def list_namespaced_pod(self, namespace, field_selector):
        name = field_selector.split("=", 1)[1]
        if name not in self._pods:
            return SimpleNamespace(items=[])
        code, _ = self._pods[name]
        m = kubernetes.client
        state = m.V1ContainerState(terminated=m.V1ContainerStateTerminated(
            exit_code=code, reason="Completed" if code == 0 else "Error"))
        status = m.V1ContainerStatus(name=CONTAINER_NAME, ready=False, restart_count=0, image="img",
                                     image_id="", state=state)
        pod = m.V1Pod(metadata=m.V1ObjectMeta(name=name, namespace=namespace),
                      status=m.V1PodStatus(phase="Succeeded" if code == 0 else "Failed",
                                           container_statuses=[status]))
        return SimpleNamespace(items=[pod])

    def read_namespaced_pod_log(self, name, namespace, **kwargs):
        _, lines = self._pods[name]
        text = "".join(f"{ts} {line}\n" for ts, line in zip(_timestamps(), lines))
        return _LogResponse(text.encode())

    def delete_namespaced_pod(self, name, namespace):
        self.deleted.append((namespace, name))


@pytest.fixture
def fake_cluster(monkeypatch):
    from dagster_k8s.client import DagsterKubernetesClient

    core = FakeCoreV1Api()
    client = DagsterKubernetesClient(batch_api=None, core_api=core, logger=lambda *_: None,
                                     sleeper=lambda _s: None, timer=__import__("time").time)
    monkeypatch.setattr(dagster_k8s_pipes.DagsterKubernetesClient, "production_client",
                        staticmethod(lambda *a, **k: client))
    loaded = []
    monkeypatch.setattr(dagster_k8s_pipes.kubernetes.config, "load_kube_config", lambda **k: loaded.append(k))
    monkeypatch.setattr(dagster_k8s_pipes.kubernetes.config, "load_incluster_config",
                        lambda: loaded.append("incluster"))
    core.loaded = loaded
    return core


def _gpu_asset(step_script: Path):
    @dg.asset
    def finetuned(context: dg.AssetExecutionContext, gpu: GPULauncher):
        extras = {"seed": 42, "fail": context.run.tags.get("fail") == "1"}
        # the fake pod has no image: it runs the step with this interpreter, as the image's `python` would
        return gpu.run(context, [sys.executable, str(step_script)], extras=extras).get_materialize_result()

    return finetuned


@pytest.fixture
def step_script(tmp_path) -> Path:
    path = tmp_path / "step.py"
    path.write_text(STEP)
    return path


def _materialization(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_k8s_mode_runs_the_step_in_a_gpu_pod(fake_cluster, step_script, monkeypatch):
    monkeypatch.setenv("HLV_PROFILE", "tiny")
    launcher = _launcher(kubeconfig_file="/nonexistent/kubeconfig")
    asset = _gpu_asset(step_script)
    result = dg.materialize([asset], resources={"gpu": launcher},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    (namespace, pod), = fake_cluster.created
    assert namespace == "hlv"
    container = pod.spec.containers[0]
    assert container.name == CONTAINER_NAME and container.image == "registry.example/hlv-assets:1.2.3"
    assert container.resources.limits["nvidia.com/gpu"] == "2"
    assert container.env_from[0].secret_ref.name == "hlv-secrets"
    assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod.metadata.labels["app.kubernetes.io/part-of"] == "hlv"
    # What the process inside the pod reported came back through the pod log into the materialization.
    assert _materialization(result) == {"profile": "tiny", "hlv_home": "/data/hlv", "seed": 42}
    assert fake_cluster.deleted == [("hlv", pod.metadata.name)]
    assert fake_cluster.loaded == [{"config_file": "/nonexistent/kubeconfig", "context": None}]


def test_k8s_mode_failed_pod_fails_the_step(fake_cluster, step_script):
    result = dg.materialize([_gpu_asset(step_script)], resources={"gpu": _launcher()}, tags={"fail": "1"},
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "exited with errors" in failure.step_failure_data.error.to_string()
    assert len(fake_cluster.deleted) == 1  # the failed pod is cleaned up too


def test_local_mode_is_a_pipes_subprocess(step_script, monkeypatch):
    monkeypatch.setenv("HLV_PROFILE", "tiny")
    monkeypatch.setenv("HLV_HOME", "/tmp/hlv-local")
    launcher = GPULauncher()
    assert launcher.mode == "local"
    assert launcher.python_command("hlv_assets.lib.train_entry", "--out", "x")[:3] == [sys.executable, "-m",
                                                                                 "hlv_assets.lib.train_entry"]
    result = dg.materialize([_gpu_asset(step_script)], resources={"gpu": launcher},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert _materialization(result) == {"profile": "tiny", "hlv_home": "/tmp/hlv-local", "seed": 42}


def test_launcher_from_env(monkeypatch):
    monkeypatch.setenv("HLV_GPU_MODE", "k8s")
    monkeypatch.setenv("HLV_GPU_IMAGE", "img:2")
    monkeypatch.setenv("HLV_GPU_COUNT", "4")
    launcher = GPULauncher.from_env()
    assert (launcher.mode, launcher.image, launcher.gpu_count) == ("k8s", "img:2", 4)
    assert launcher.python_command("m") == ["python", "-m", "m"]


# ---- the deploy files agree with each other and with the code ------------------------------------------
DEPLOY = REPO_ROOT / "deploy"


def test_helm_values_match_the_instance_and_the_launcher(monkeypatch):
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    production = yaml.safe_load((DEPLOY / "dagster.production.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", "hlv_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {e["name"]: e.get("value") for e in deployment["env"]}
    assert env["HLV_DATA_DIR"] == "/data/raw" and env["HLV_HOME"] == "/data/hlv"
    assert env["HLV_GPU_IMAGE"] == f'{deployment["image"]["repository"]}:{deployment["image"]["tag"]}'
    mount = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    claim = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
    # the code location builds the GPU launcher from these: its pods see the same data at the same path
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    launcher = GPULauncher.from_env()
    assert (launcher.mode, launcher.image, launcher.gpu_count) == ("k8s", env["HLV_GPU_IMAGE"], 1)
    pod = gpu_pod_spec(launcher, ["python", "-V"])
    pod_env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert pod_env["HLV_HOME"] == env["HLV_HOME"] and pod_env["HLV_DATA_DIR"] == env["HLV_DATA_DIR"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["hlv-data"]
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == mount["hlv-data"]
    assert {"name": launcher.secret_name} in deployment["envSecrets"]

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    # the chart refuses a run limit in both places; ours lives in `concurrency`, as in the instance YAML
    assert "maxConcurrentRuns" not in (coordinator["config"]["queuedRunCoordinator"] or {})
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] == production["concurrency"]["runs"]["max_concurrent_runs"]
    assert values["concurrency"]["pools"]["defaultLimit"] == production["concurrency"]["pools"]["default_limit"]
    assert values["postgresql"]["postgresqlScheme"] == production["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["telemetry"]["enabled"] is False and production["telemetry"]["enabled"] is False


def test_readme_vllm_example_is_consistent():
    """The vLLM server of deploy/README.md: as many GPUs as tensor-parallel ranks, and registered under the
    service's URL."""
    readme = (DEPLOY / "README.md").read_text()
    blocks = [b.split("\n", 1)[1] for b in readme.split("```")[1::2] if b.startswith("yaml")]
    docs = [d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") in ("Deployment", "Service")]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    tp = int(args[args.index("--tensor-parallel-size") + 1])
    assert tp == 2 and int(container["resources"]["limits"]["nvidia.com/gpu"]) == tp
    port = service["spec"]["ports"][0]["port"]
    assert f"--option base_url=http://{service['metadata']['name']}:{port}/v1" in readme
    assert f"--model {args[args.index('serve') + 1]}" in readme


def test_dockerfile_installs_with_constraints_and_bakes_no_data():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "-c constraints.txt" in text
    assert "HLV_DATA_DIR=/data/raw" in text
    assert "COPY data" not in text and "/shared" not in text
