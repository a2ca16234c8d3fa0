"""GPU steps out of process with Dagster Pipes: a subprocess on this machine, or a pod of its own on Kubernetes.

`GPULauncher.run(context, command)` starts the command (e.g. ``python -m hlv_assets.lib.train_entry ...``), streams
its Pipes log and materialization metadata back into the step, and returns when it exits, so the GPU memory is
released after every step and torch/vLLM are never imported by the orchestrating process. `gpu_pod_spec` renders
the pod spec of `k8s` mode as plain data (tested without a cluster; `kubectl`-ready once dumped as YAML).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dagster as dg
from pydantic import Field

#: Variables of the orchestrating process that a GPU step sees too (the profile decides models and sizes).
FORWARDED_ENV = ("HLV_PROFILE",)

#: The container that speaks Pipes: the first (and only) one of the pod.
CONTAINER_NAME = "hlv-gpu"


class GPULauncher(dg.ConfigurableResource):
    """Runs a GPU step: `mode="local"` (default) as a subprocess (`dg.PipesSubprocessClient`), `mode="k8s"` as
    a pod requesting `gpu_count` GPUs (`dagster_k8s.PipesK8sClient`, imported only in that mode).

    Pod settings: `image` (the code-location image), `namespace` (None: the current one), `node_selector`,
    `tolerations`, `resources` (cpu/memory; the GPU limit is added from `gpu_count`), `secret_name` (a Secret
    whose keys become environment variables: OPENAI_API_KEY, HF_TOKEN, HLV_DB_URL), `data_claim` (the
    PersistentVolumeClaim with raw data, outputs and checkpoints, mounted at `data_mount`).
    """

    mode: Literal["local", "k8s"] = "local"
    image: str = "hlv-assets:latest"
    image_pull_policy: str = "IfNotPresent"
    namespace: str | None = None
    service_account: str | None = None
    gpu_count: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"memory": "64Gi"}})
    secret_name: str | None = "hlv-secrets"
    data_claim: str | None = "hlv-data"
    data_mount: str = "/data"
    #: tmpfs for /dev/shm: DataLoader workers and NCCL (vLLM tensor parallelism) need more than the 64 MiB default
    shm_size: str | None = "16Gi"
    env: dict[str, str] = Field(default_factory=dict)
    kubeconfig_file: str | None = None
    load_incluster_config: bool | None = None
    poll_interval: float = 10.0
    pod_wait_timeout: float = 24 * 3600.0

    @classmethod
    def from_env(cls) -> GPULauncher:
        """`HLV_GPU_MODE`, `HLV_GPU_IMAGE`, `HLV_GPU_NAMESPACE`, `HLV_GPU_COUNT`, `HLV_GPU_SECRET`,
        `HLV_GPU_DATA_CLAIM` (the Helm values set them on the code location); unset ones keep the defaults."""
        names = {"mode": "HLV_GPU_MODE", "image": "HLV_GPU_IMAGE", "namespace": "HLV_GPU_NAMESPACE",
                 "gpu_count": "HLV_GPU_COUNT", "secret_name": "HLV_GPU_SECRET", "data_claim": "HLV_GPU_DATA_CLAIM"}
        return cls(**{field: os.environ[var] for field, var in names.items() if os.environ.get(var)})

    def python_command(self, module: str, *args: str) -> list[str]:
        """``python -m module args``: this interpreter locally, the image's `python` in a pod."""
        return [sys.executable if self.mode == "local" else "python", "-m", module, *args]

    def step_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        forwarded = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
        return {**forwarded, **self.env, **(env or {})}

    def pipes_client(self):
        if self.mode == "local":
            return dg.PipesSubprocessClient(env=self.step_env())
        from dagster_k8s import PipesK8sClient  # optional dependency: only a cluster deployment has it

        return PipesK8sClient(env=self.step_env(), load_incluster_config=self.load_incluster_config,
                              kubeconfig_file=self.kubeconfig_file, poll_interval=self.poll_interval)

    def run(self, context: dg.AssetExecutionContext | dg.OpExecutionContext, command: Sequence[str], *,
            extras: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> dg.PipesClientCompletedInvocation:
        """Run `command` as a Pipes process for this step; `extras` reach it as `pipes.extras`."""
        client = self.pipes_client()
        if self.mode == "local":
            return client.run(context=context, command=list(command), extras=dict(extras or {}),
                              env=dict(env or {}), cwd=cwd)
        return client.run(context=context, extras=dict(extras or {}), namespace=self.namespace,
                          env=dict(env or {}), base_pod_meta={"labels": {"app.kubernetes.io/part-of": "hlv"}},
                          base_pod_spec=gpu_pod_spec(self, command), pod_wait_timeout=self.pod_wait_timeout)


def gpu_pod_spec(config: GPULauncher, command: Sequence[str]) -> dict[str, Any]:
    """The Kubernetes PodSpec (camelCase, as in a manifest) of one GPU step; Pipes adds its own variables."""
    limits = dict(config.resources.get("limits", {}))
    requests = dict(config.resources.get("requests", {}))
    if config.gpu_count > 0:
        # an extended resource: the request defaults to the limit, and the two may not differ
        limits[config.gpu_resource] = str(config.gpu_count)
        requests.pop(config.gpu_resource, None)
    data_env = {"HLV_HOME": f"{config.data_mount}/hlv", "HLV_DATA_DIR": f"{config.data_mount}/raw",
                "HF_HOME": f"{config.data_mount}/hf", "HF_HUB_OFFLINE": "1"}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": list(command),
        "env": [{"name": k, "value": v} for k, v in {**data_env, **config.env}.items()],
        "resources": {k: v for k, v in {"requests": requests, "limits": limits}.items() if v},
        "volumeMounts": [],
    }
    volumes: list[dict[str, Any]] = []
    if config.secret_name:
        container["envFrom"] = [{"secretRef": {"name": config.secret_name}}]
    if config.data_claim:
        container["volumeMounts"].append({"name": "hlv-data", "mountPath": config.data_mount})
        volumes.append({"name": "hlv-data", "persistentVolumeClaim": {"claimName": config.data_claim}})
    if config.shm_size:
        container["volumeMounts"].append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": config.shm_size}})
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": volumes}
    if config.node_selector:
        spec["nodeSelector"] = dict(config.node_selector)
    if config.tolerations and config.gpu_count > 0:
        spec["tolerations"] = [dict(t) for t in config.tolerations]
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    return spec
