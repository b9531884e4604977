"""Shared fixtures: composed configs (as Hydra composes them), the real data, the CLI."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hypothesis import settings
from omegaconf import DictConfig

from mlops_lr.config import Config, register_configs, to_config
from mlops_lr.data import Dataset, load_california
from mlops_lr.exceptions import DataError

# No example database: tests write nothing into the checkout (.hypothesis/).
settings.register_profile("mlops-lr", database=None)
settings.load_profile("mlops-lr")

REPO_ROOT = Path(__file__).resolve().parent.parent
# California Housing's features, in scikit-learn's order.
CALIFORNIA_FEATURES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)

CONFIG_DIR = REPO_ROOT / "conf"

# `export SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data` is relative to where pytest starts;
# the CLI subprocesses of the tests run elsewhere (their tmp_path), so make it absolute once.
if os.environ.get("SCIKIT_LEARN_DATA"):
    os.environ["SCIKIT_LEARN_DATA"] = os.path.abspath(os.environ["SCIKIT_LEARN_DATA"])


@pytest.fixture(scope="session", autouse=True)
def _registered_schemas() -> None:
    register_configs()


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``conf/config.yaml`` with overrides; artifacts go to ``tmp_path``."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(
                "config",
                overrides=[f"paths.artifacts_dir={tmp_path / 'artifacts'}", *overrides],
            )

    return _compose


@pytest.fixture
def make_config(compose_cfg: Callable[..., DictConfig]) -> Callable[..., Config]:
    """Compose and validate: the typed :class:`Config` a stage receives."""
    return lambda *overrides: to_config(compose_cfg(*overrides))


@pytest.fixture(scope="session")
def california() -> Dataset:
    """California Housing from ``$SCIKIT_LEARN_DATA``; a missing data set fails, never skips."""
    try:
        return load_california(download_if_missing=os.environ.get("CI") != "true")
    except DataError as error:
        pytest.fail(f"the real data is required: {error}")


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory: pytest.TempPathFactory, california: Dataset) -> Path:
    """An artifacts directory with the float model and the default 8-bit quantized model of
    California Housing, made once per session. Tests must not modify it."""
    from mlops_lr.stages import quantize

    directory = tmp_path_factory.mktemp("trained") / "artifacts"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = to_config(
            compose("config", overrides=["stage=quantize", f"paths.artifacts_dir={directory}"])
        )
    quantize.run(config)
    return directory


def _cli_arguments(tmp_path: Path, overrides: tuple[str, ...]) -> list[str]:
    """Hydra's run directory and our artifacts under ``tmp_path``, then the test's overrides."""
    return [
        f"hydra.run.dir={tmp_path / 'hydra'}",
        f"paths.artifacts_dir={tmp_path / 'artifacts'}",
        *overrides,
    ]


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m mlops_lr`` with overrides in a new process (the real entry point)."""

    def _run(*overrides: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mlops_lr", *_cli_arguments(tmp_path, overrides)]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)

    return _run


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli`` in this process: the same ``main()``, argv, exit code and output, without
    an interpreter start-up and imports per call (about 2 s each)."""
    from mlops_lr.cli import main

    monkeypatch.chdir(tmp_path)

    def _run(*overrides: str) -> subprocess.CompletedProcess[str]:
        argv = ["mlops_lr", *_cli_arguments(tmp_path, overrides)]
        monkeypatch.setattr(sys, "argv", argv)
        stdout, stderr = io.StringIO(), io.StringIO()
        returncode = 0
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                main()
        except SystemExit as exit_:
            if isinstance(exit_.code, str):  # printed by the interpreter, status 1
                stderr.write(f"{exit_.code}\n")
            returncode = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        finally:
            GlobalHydra.instance().clear()  # as a new process would start
        return subprocess.CompletedProcess(argv, returncode, stdout.getvalue(), stderr.getvalue())

    return _run


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], expected: str, exit_code: int
) -> None:
    """The CLI failed with ``exit_code`` and exactly one ``error: …`` line containing
    ``expected``, and no traceback."""
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
