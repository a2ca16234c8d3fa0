"""Running the training entry point out of process, so a step's (GPU) memory is released when it ends."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from pydantic import Field

from hlv_assets.defs.gpu import GPULauncher
from hlv_assets.lib.finetune import run_finetune


class TrainingLauncher(dg.ConfigurableResource):
    """Runs `python -m hlv_assets.lib.train_entry` for each fine-tune.

    `mode`: `pipes` (default: through the `gpu` launcher, a Pipes subprocess locally or a GPU pod on a
    cluster), `subprocess` (a plain child process) or `inprocess` (debugging). The entry point needs only
    torch, transformers and safetensors. `device`: auto, cpu or cuda[:N]; fp32 unless HLV_FINETUNE_PRECISION=bf16 (then on GPUs that support it).
    On a cluster, `hlv_assets/defs/gpu.py`'s launcher runs the same entry point in a GPU pod (see deploy/).
    """

    mode: str = "pipes"
    device: str = "auto"
    timeout_s: int = 6 * 3600
    gpu: GPULauncher = Field(default_factory=GPULauncher)

    def run(self, context: dg.AssetExecutionContext, config: dict, out_dir: Path) -> dict:
        config = {**config, "device": self.device}
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = out_dir / "config.json"
        cfg_path.write_text(json.dumps(config, indent=2))
        if self.mode == "inprocess":
            return run_finetune(config, out_dir)
        if self.mode == "pipes":  # locally a Pipes subprocess, on a cluster a GPU pod (deploy/README.md)
            self.gpu.run(context, self.gpu.python_command("hlv_assets.lib.train_entry", "--config", str(cfg_path),
                                                          "--out", str(out_dir)))
            return json.loads((out_dir / "metrics.json").read_text())
        cmd = [sys.executable, "-m", "hlv_assets.lib.train_entry", "--config", str(cfg_path), "--out", str(out_dir)]
        context.log.info(f"training: {' '.join(cmd)}")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, env=env)
        if proc.returncode != 0:
            raise dg.Failure(f"training failed (exit {proc.returncode}) for {out_dir}",
                             metadata={"stderr": dg.MetadataValue.text(proc.stderr[-4000:])})
        return json.loads((out_dir / "metrics.json").read_text())
