"""Registers the resources every asset uses (picked up by `load_from_defs_folder`)."""

from __future__ import annotations

import dagster as dg

from hlv_assets.defs.gpu import GPULauncher
from hlv_assets.defs.io_managers import DISTRIBUTION_IO, ParquetIOManager, distribution_io_manager
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.resources import DataSourceResource, HLVSettings, ResultStoreResource
from hlv_assets.defs.training.launch import TrainingLauncher


def default_resources() -> dict:
    return {
        "settings": HLVSettings.from_env(),  # validates every setting: a wrong one fails the load in one line
        "data": DataSourceResource(),
        "results": ResultStoreResource(),
        "io_manager": ParquetIOManager(),
        DISTRIBUTION_IO: distribution_io_manager,
        "llms": LLMResource(),
        "trainer": TrainingLauncher(gpu=GPULauncher.from_env()),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
