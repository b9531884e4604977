"""The command line end to end: exit codes, one-line errors, no artifacts from a failed run.

``run_cli`` starts ``python -m mlops_lr`` (the entry point itself: the assignment's lines,
``--help``, a config error, a missing data home); ``cli`` runs the same ``main()`` in this
process where the behaviour under test is not the process's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_one_line_error

BAD_INPUTS = {
    "nan.csv": ("a,b,y\n1,2,3\n4,5,6\n7,,9\n", "column 'b' has 1 missing or infinite value(s)"),
    "text.csv": ("a,b,y\n1,2,3\n4,x,6\n7,8,9\n", "column 'b' is not numeric: 'x' on line 3"),
    "no_target.csv": ("a,b,c\n1,2,3\n4,5,6\n", "target column 'y' not found"),
    "empty.csv": ("", "the file is empty"),
}


def test_train_on_california_prints_the_assignment_lines(run_cli, tmp_path: Path) -> None:
    result = run_cli()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == ["R² Score: 0.5758", "MSE Loss: 0.5559"]
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [
        "folded.json",
        "manifest.json",
        "metrics.json",
        "model.joblib",
        "samples.json",
    ]
    assert (tmp_path / "hydra" / "mlops_lr.log").exists()


def test_diabetes_needs_no_download(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "empty-data-home"))
    result = cli("dataset=diabetes", "dataset.random_state=0")
    assert result.returncode == 0, result.stderr
    expected = "Dataset: diabetes (442 rows, 10 features; train 353, test 89; engine memory)"
    assert expected in result.stdout
    assert (tmp_path / "artifacts" / "model.joblib").exists()


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_csv_gives_one_line_and_no_artifacts(cli, tmp_path: Path, name: str) -> None:
    content, expected = BAD_INPUTS[name]
    (tmp_path / name).write_text(content)
    result = cli("dataset=csv", f"dataset.path={tmp_path / name}", "dataset.target=y")
    assert_one_line_error(result, expected, exit_code=3)
    assert not (tmp_path / "artifacts").exists()


def test_impossible_config_gives_one_line_and_no_artifacts(run_cli, tmp_path: Path) -> None:
    result = run_cli("dataset.test_size=1.5")
    assert_one_line_error(result, "dataset.test_size=1.5 is not allowed", exit_code=2)
    assert not (tmp_path / "artifacts").exists()


def test_missing_data_home_gives_one_line(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "empty-data-home"))
    result = run_cli("dataset.download_if_missing=false")
    assert_one_line_error(result, "California Housing is not in the scikit-learn data home", 3)


def test_failed_run_keeps_the_previous_model(cli, tmp_path: Path) -> None:
    assert cli("dataset=diabetes").returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "artifacts").iterdir()}
    (tmp_path / "bad.csv").write_text("a,y\n1,2\n,3\n4,5\n")
    result = cli("dataset=csv", f"dataset.path={tmp_path / 'bad.csv'}", "dataset.target=y")
    assert result.returncode == 3
    assert {p.name: p.read_bytes() for p in (tmp_path / "artifacts").iterdir()} == before


def test_help_lists_the_stages_and_groups(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "Stages (stage=...): train, quantize, predict, serve, export" in result.stdout
    assert "dataset: breast_cancer, california, csv, diabetes" in result.stdout


def test_a_data_home_that_cannot_be_created_gives_one_line(
    cli, tmp_path: Path, monkeypatch
) -> None:
    # Under a regular file: creating it fails even for root (as a read-only home does for a user).
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "a-file" / "data"))
    result = cli()
    assert_one_line_error(result, "California Housing is not in the scikit-learn data home", 3)


def test_in_process_runs_show_warnings_as_a_new_process_would(cli, monkeypatch) -> None:
    """The ``cli`` fixture's own promise: a warning a library emits during a run reaches stderr
    (where it breaks a one-line error, as in a real process), in every run; deprecations stay
    hidden, as Python's default filters hide them."""
    import warnings

    from mlops_lr.stages import train

    def warn_and_fail(config) -> None:
        warnings.warn("a library's warning", FutureWarning, stacklevel=1)
        warnings.warn("a deprecation", DeprecationWarning, stacklevel=1)
        raise SystemExit(3)

    monkeypatch.setattr(train, "run", warn_and_fail)
    for _ in range(2):
        result = cli("dataset=diabetes")
        assert result.returncode == 3
        assert "FutureWarning: a library's warning" in result.stderr
        assert "deprecation" not in result.stderr


def test_an_unknown_option_is_one_line_naming_the_options(run_cli, tmp_path: Path) -> None:
    result = run_cli("model=svm")
    assert_one_line_error(
        result,
        "Could not find 'model/svm'; options: elastic_net, lasso, linear_regression, "
        "logistic_regression, ridge",
        exit_code=2,
    )
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.fit_intercept=maybe", "Error merging override model.fit_intercept=maybe; Value"),
        ("dataset.unknown_key=1", "Could not override 'dataset.unknown_key'; Key 'unknown_key'"),
        ("dataset.test_size=[1", "cannot parse 'dataset.test_size=[1'"),
        ("+sweep=nope", "Could not find 'sweep/nope'; options: alpha, bits"),
    ],
)
def test_hydra_composition_errors_are_one_line(
    cli, tmp_path: Path, override: str, message: str
) -> None:
    assert_one_line_error(cli(override), message, exit_code=2)
    assert "HYDRA_FULL_ERROR" not in os.environ  # set for the run only
    assert not (tmp_path / "artifacts").exists()


def test_an_unresolvable_interpolation_is_one_line(cli, tmp_path: Path) -> None:
    result = cli("paths.artifacts_dir=${oc.env:MLOPS_LR_NO_SUCH_VARIABLE}")
    assert_one_line_error(result, "paths.artifacts_dir: ", exit_code=2)
    assert "MLOPS_LR_NO_SUCH_VARIABLE" in result.stderr


def test_a_bug_inside_a_stage_keeps_its_traceback(cli, monkeypatch) -> None:
    """Only Hydra's composition errors become one line: an OmegaConf error raised by our own
    code while a stage runs is a bug, not a config error."""
    from omegaconf.errors import ConfigKeyError

    from mlops_lr.stages import train

    def buggy(config) -> None:
        raise ConfigKeyError("a key our code forgot")

    monkeypatch.setattr(train, "run", buggy)
    with pytest.raises(ConfigKeyError, match="a key our code forgot"):
        cli("dataset=diabetes")


def test_hydra_full_error_keeps_hydras_own_report(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    result = run_cli("model=svm")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "MissingConfigException" in result.stderr


def test_dropped_rows_are_counted_and_streams_drop_them_too(cli, tmp_path: Path) -> None:
    rows = "".join(f"{i},{2 * i % 7},{'' if i % 10 == 0 else 3 * i + 1}\n" for i in range(1, 41))
    (tmp_path / "data.csv").write_text("a,b,y\n" + rows.replace(",14,", ",-999,"))
    table = ("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=y")
    result = cli(*table)
    assert_one_line_error(result, "column 'y' has 4 missing or infinite value(s)", exit_code=3)
    result = cli(*table, "dataset.missing_target=drop")
    assert result.returncode == 0, result.stderr
    assert "Dropped 4 row(s) whose target 'y' is missing" in result.stdout
    assert "(36 rows, 2 features" in result.stdout
    coef = {}
    for engine in ("memory", "stream", "dask"):
        directory = tmp_path / engine
        result = cli(
            *table,
            "dataset.missing_target=drop",
            "dataset.na_values=['',-999]",
            "dataset.split=hash",
            "preprocess=standard",
            f"engine={engine}",
            f"paths.artifacts_dir={directory}",
        )
        assert result.returncode == 0, result.stderr
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics["n_train"] + metrics["n_test"] == 36
        coef[engine] = np.array(metrics["coef"])
    scale = 1e-9 * np.abs(coef["memory"]).max()
    np.testing.assert_allclose(coef["stream"], coef["memory"], rtol=0, atol=scale)
    np.testing.assert_allclose(coef["dask"], coef["memory"], rtol=0, atol=scale)
