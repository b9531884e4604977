"""Shared fixtures: composed configs (as Hydra composes them), the real data, the CLI."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
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
# gcc's strict build of the exported C, and the sanitizers the tests add to it.
STRICT_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion"]
SANITIZERS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
# palmerpenguins: text categories (species, island, sex) and NA cells, target body mass.
PENGUINS_TARGET = "body_mass_g"
PENGUINS_CATEGORICAL = ("species", "island", "sex")

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
    directory = tmp_path_factory.mktemp("trained") / "artifacts"
    train_and_quantize(directory)
    return directory


def train_and_quantize(directory: Path, *overrides: str) -> Config:
    """Run the quantize stage (training first) in this process with the CLI's ``overrides``,
    its artifacts in ``directory``; returns the config it ran with."""
    from mlops_lr.stages import quantize

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = to_config(
            compose(
                "config",
                overrides=["stage=quantize", f"paths.artifacts_dir={directory}", *overrides],
            )
        )
    quantize.run(config)
    return config


def _cli_arguments(tmp_path: Path, overrides: tuple[str, ...]) -> list[str]:
    """Hydra's run directory and our artifacts under ``tmp_path``, then the test's overrides."""
    return [
        f"hydra.run.dir={tmp_path / 'hydra'}",
        f"paths.artifacts_dir={tmp_path / 'artifacts'}",
        *overrides,
    ]


@pytest.fixture
def run_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m mlops_lr`` with overrides in a new process (the real entry point)."""
    # One-line errors whatever the developer's shell exports (a test may set it again).
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def _run(*overrides: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mlops_lr", *_cli_arguments(tmp_path, overrides)]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)

    return _run


# A fresh interpreter's warning filters: deprecations hidden, every other warning shown once.
_HIDDEN_IN_A_FRESH_PROCESS = (
    DeprecationWarning,
    PendingDeprecationWarning,
    ImportWarning,
    ResourceWarning,
)


@contextlib.contextmanager
def _as_a_fresh_process(stderr: io.StringIO) -> Iterator[None]:
    """Show warnings as a fresh interpreter would, on ``stderr``; afterwards, undo the global
    state a run leaves behind (Hydra's singletons, the logging handlers it installs)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for category in _HIDDEN_IN_A_FRESH_PROCESS:
            warnings.filterwarnings("ignore", category=category)
        try:
            yield
        finally:
            for warning in caught:
                stderr.write(
                    warnings.formatwarning(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )
                )
            for handler in set(root.handlers) - set(handlers):
                handler.close()
            root.handlers[:] = handlers
            root.setLevel(level)
            GlobalHydra.instance().clear()
            HydraConfig.instance().cfg = None


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli`` in this process: the same ``main()``, argv, environment, exit code, output
    and warnings, without an interpreter start-up and imports per call (about 2 s each)."""
    from mlops_lr.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROJECT_ROOT", str(REPO_ROOT))  # what main() sets in a new process
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def _run(*overrides: str) -> subprocess.CompletedProcess[str]:
        argv = ["mlops_lr", *_cli_arguments(tmp_path, overrides)]
        monkeypatch.setattr(sys, "argv", argv)
        stdout, stderr = io.StringIO(), io.StringIO()
        returncode = 0
        try:
            with (
                contextlib.redirect_stdout(stdout),
                contextlib.redirect_stderr(stderr),
                _as_a_fresh_process(stderr),
            ):
                main()
        except SystemExit as exit_:
            if isinstance(exit_.code, str):  # printed by the interpreter, status 1
                stderr.write(f"{exit_.code}\n")
            returncode = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
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


@pytest.fixture(scope="session")
def penguins_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """palmerpenguins' table as a CSV (NA cells as the package writes them)."""
    import palmerpenguins

    path = tmp_path_factory.mktemp("penguins") / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(path, index=False)
    return path


def penguin_overrides(path: Path, *more: str) -> tuple[str, ...]:
    """The CLI overrides that train on the penguins CSV at ``path`` with preprocessing."""
    return (
        "dataset=csv",
        f"dataset.path={path}",
        f"dataset.target={PENGUINS_TARGET}",
        "dataset.missing_target=drop",
        "preprocess=standard",
        *more,
    )


def mixed_table(n_rows: int, seed: int = 0, late_category: bool = False) -> pd.DataFrame:
    """A synthetic table with what real ones have: numeric columns with missing values, one
    far from zero (offset 1e6), an integer count, three text columns (12 skewed levels with
    rare ones and missing cells, 3 levels, 30 levels) and a target ``y`` linear in all of
    them plus noise. ``late_category``: the colour ``"late"`` appears in the last tenth of
    the rows only (a category a stream meets in its last batches)."""
    rng = np.random.default_rng(seed)
    colours = np.array([f"c{i:02d}" for i in range(12)])
    shares = np.geomspace(1.0, 0.01, len(colours))
    colour = rng.choice(colours, n_rows, p=shares / shares.sum()).astype(object)
    colour[rng.random(n_rows) < 0.05] = None
    if late_category:
        tail = np.arange(n_rows) >= n_rows - n_rows // 10
        colour[tail & (rng.random(n_rows) < 0.2)] = "late"
    grade = rng.choice(np.array(["A", "B", "C"], dtype=object), n_rows)
    region = rng.choice(np.array([f"r{i:02d}" for i in range(30)], dtype=object), n_rows)
    size = rng.normal(50.0, 10.0, n_rows)
    size[rng.random(n_rows) < 0.1] = np.nan
    offset = 1e6 + rng.normal(0.0, 1.0, n_rows)
    count = rng.integers(0, 21, n_rows).astype(np.float64)
    effect = {c: rng.normal(0.0, 3.0) for c in [*colours, "late"]}
    y = (
        0.7 * np.nan_to_num(size, nan=45.0)
        + 4.0 * (offset - 1e6)
        - 0.3 * count
        + np.array([effect.get(c, -2.0) for c in colour])
        + pd.Series(grade).map({"A": 1.0, "B": 0.0, "C": -1.5}).to_numpy()
        + np.array([int(r[1:]) / 10 for r in region])
        + rng.normal(0.0, 1.0, n_rows)
    )
    return pd.DataFrame(
        {
            "size": size,
            "offset": offset,
            "count": count,
            "colour": colour,
            "grade": grade,
            "region": region,
            "y": y,
        }
    )


def compile_c(
    directory: Path, source: str, flags: list[str], output: str, libraries: tuple[str, ...] = ()
) -> Path:
    """``gcc <flags> <source> -o <output> <libraries>`` in ``directory``, which must succeed
    without a single warning; the executable. gcc is required, never skipped."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is required to test the C export (Debian: apt-get install gcc)")
    build = subprocess.run(
        [gcc, *flags, source, "-o", output, *libraries],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    assert build.stderr == ""  # not even a warning
    return directory / output
