"""Tracking with real MLflow on a temporary SQLite store (no mocks): runs with their params,
metrics, tags and artifacts; the pyfunc model against our predictor; a parallel sweep's parent
and children; the registry, its alias and serving from it; and tracking=none importing no
MLflow at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from mlops_lr import artifacts
from mlops_lr.predictor import load_predictor
from mlops_lr.sweep import best_setting
from tests.conftest import REPO_ROOT, assert_one_line_error
from tests.test_serve import _start_server, _stop

TRACKED = ("tracking=mlflow", "dataset=diabetes")


def store(tmp_path: Path) -> MlflowClient:
    """The client of the store tracking=mlflow uses by default: under the artifacts."""
    uri = f"sqlite:///{tmp_path / 'artifacts' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri, uri)


def runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("mlops-lr")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_untracked_runs_never_import_mlflow(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from mlops_lr.cli import main\n"
        "for stage in ('stage=quantize', 'stage=predict', 'stage=register'):\n"
        f"    sys.argv = ['mlops_lr', stage, 'dataset=diabetes', "
        f"'paths.artifacts_dir={tmp_path / 'artifacts'}', 'hydra.run.dir={tmp_path / 'h'}']\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit:\n"
        "        print('exit', exit.code)\n"
        "print('mlflow imported:', sorted(m for m in sys.modules if m.startswith('mlflow')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "mlflow imported: []" in result.stdout
    assert "exit 2" in result.stdout  # stage=register without tracking=mlflow: one line
    assert "error: stage='register' is not allowed: register only with tracking=mlflow" in (
        result.stderr
    )
    assert not (tmp_path / "artifacts" / "mlflow.db").exists()


def test_train_quantize_and_export_are_runs_with_params_metrics_tags_and_artifacts(
    cli, tmp_path: Path
) -> None:
    for stage in ("stage=train", "stage=quantize", "stage=export"):
        result = cli(stage, *TRACKED)
        assert result.returncode == 0, result.stderr
        assert "MLflow run " in result.stdout
    client = store(tmp_path)
    train, quantize, export = runs(client)
    assert [r.info.run_name for r in (train, quantize, export)] == [
        "train",
        "quantize default-8bit",
        "export default-8bit onnx",
    ]
    assert {r.info.status for r in (train, quantize, export)} == {"FINISHED"}

    artifacts_dir = tmp_path / "artifacts"
    metrics = json.loads((artifacts_dir / "metrics.json").read_text())
    manifest = artifacts.read_manifest(artifacts_dir)
    assert train.data.params["dataset.name"] == "diabetes"
    assert train.data.params["model._target_"] == "sklearn.linear_model.LinearRegression"
    assert "quantization.bits" not in train.data.params
    assert train.data.metrics["r2"] == metrics["r2"]
    assert train.data.metrics["mse"] == metrics["mse"]
    tags = train.data.tags
    assert tags["mlops_lr.data_fingerprint"] == manifest["data_fingerprint"]
    assert tags["mlops_lr.source_model_sha256"] == manifest["files"]["model.joblib"]["sha256"]
    assert tags["mlops_lr.model_sha256"] == manifest["files"]["folded.json"]["sha256"]
    assert tags["mlops_lr.version.numpy"] == np.__version__
    assert tags["mlops_lr.version.mlflow-skinny"] == mlflow.__version__
    logged = {a.path for a in client.list_artifacts(train.info.run_id)}
    assert logged == {"folded.json", "metrics.json", "samples.json", "manifest.json"}

    quantized_dir = artifacts_dir / "quantized" / "default-8bit"
    quantized_metrics = json.loads((quantized_dir / "metrics.json").read_text())
    assert quantize.data.params["quantization.bits"] == "8"
    assert quantize.data.params["quantization.rounding"] == "auto"
    assert quantize.data.metrics["r2_quant"] == quantized_metrics["r2_quant"]
    assert quantize.data.metrics["max_abs_pred_diff"] == quantized_metrics["max_abs_pred_diff"]
    assert quantize.data.tags["mlops_lr.quality"] == quantized_metrics["quality"]
    assert (
        quantize.data.tags["mlops_lr.source_model_sha256"] == tags["mlops_lr.source_model_sha256"]
    )
    logged = {a.path for a in client.list_artifacts(quantize.info.run_id)}
    assert logged == {"model.json", "metrics.json", "report.md", "manifest.json"}

    export_dir = artifacts_dir / "export" / "default-8bit" / "onnx"
    report = json.loads((export_dir / "export.json").read_text())
    assert export.data.params["export.format"] == "onnx"
    assert export.data.metrics["checks.float64.r2"] == report["checks"]["float64"]["r2"]
    assert (
        export.data.tags["mlops_lr.exported_model_sha256"]
        == (quantize.data.tags["mlops_lr.model_sha256"])
    )
    logged = {a.path for a in client.list_artifacts(export.info.run_id)}
    assert logged == {"model.float32.onnx", "model.float64.onnx", "export.json", "manifest.json"}
    assert "mlops_lr.model_uri" not in export.data.tags  # an export logs files, not a model


@pytest.mark.parametrize("model", ["float", "default-4bit"])
def test_the_pyfunc_model_predicts_exactly_what_our_predictor_does_without_a_pickle(
    cli, tmp_path: Path, penguins_csv: Path, model: str
) -> None:
    """On a table with text categories and NA cells, loaded from the store by MLflow."""
    table = (
        "dataset=csv",
        f"dataset.path={penguins_csv}",
        "dataset.target=body_mass_g",
        "dataset.missing_target=drop",
        "preprocess=standard",
        "tracking=mlflow",
    )
    stage = "stage=train" if model == "float" else "stage=quantize"
    result = cli(stage, "quantization.bits=4", *table)
    assert result.returncode == 0, result.stderr
    client = store(tmp_path)
    (run,) = runs(client) if model == "float" else runs(client)[-1:]
    uri = run.data.tags["mlops_lr.model_uri"]

    rows = pd.read_csv(penguins_csv)
    features = rows.drop(columns=["body_mass_g"])
    assert features.isna().any().any()  # missing numbers and categories reach the model
    assert features["year"].dtype == np.int64
    ours = load_predictor(tmp_path / "artifacts", model).predict_table(features)
    pyfunc = mlflow.pyfunc.load_model(uri)
    assert np.array_equal(pyfunc.predict(features), ours)  # to 0.0
    for backend in ("numpy_nullable", "pyarrow"):  # pandas' NA, which MLflow makes object
        nullable = pd.read_csv(penguins_csv, dtype_backend=backend).drop(columns=["body_mass_g"])
        assert np.array_equal(pyfunc.predict(nullable), ours)

    directory = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "dl")))
    described = yaml.safe_load((directory / "MLmodel").read_text())
    flavor = described["flavors"]["python_function"]
    assert flavor["model_code_path"].endswith("pyfunc_model.py")  # models from code
    assert "python_model" not in flavor  # no cloudpickled PythonModel
    files = [p.name for p in directory.rglob("*") if p.is_file()]
    assert not [name for name in files if name.endswith((".pkl", ".joblib", ".pickle"))]
    assert (directory / "code" / "mlops_lr" / "predictor.py").is_file()
    np.save(tmp_path / "ours.npy", ours)
    assert_loads_with_its_own_code(uri, penguins_csv, tmp_path)
    requirements = (directory / "requirements.txt").read_text().split()
    assert f"numpy=={np.__version__}" in requirements
    signature = json.loads(described["signature"]["inputs"])
    columns = [column["name"] for column in signature]
    assert columns == list(features.columns)
    assert {column["type"] for column in signature} == {"any"}  # int64 columns pass as they are
    kinds = described["metadata"]["feature_kinds"]
    assert kinds["species"] == "categorical"
    assert kinds["year"] == "numeric"
    example = json.loads((directory / "input_example.json").read_text())
    assert example["columns"] == columns


def assert_loads_with_its_own_code(uri: str, table: Path, tmp_path: Path) -> None:
    """In a fresh interpreter where our package cannot be imported (its editable install and
    the checkout hidden), the model loads the package it carries and predicts the same."""
    script = f"""
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if p and p.rstrip("/") != {str(REPO_ROOT)!r}]
assert importlib.util.find_spec("mlops_lr") is None, "the installed package is visible"
import mlflow, numpy as np, pandas as pd
mlflow.set_tracking_uri({mlflow.get_tracking_uri()!r})
model = mlflow.pyfunc.load_model({uri!r})
frame = pd.read_csv({str(table)!r}).drop(columns=["body_mass_g"])
assert np.array_equal(model.predict(frame), np.load({str(tmp_path / "ours.npy")!r}))
import mlops_lr
print(mlops_lr.__file__)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "/code/mlops_lr/__init__.py" in result.stdout  # the model's own copy


def sweep(
    tmp_path: Path,
    *overrides: str,
    env: dict[str, str] | None = None,
    tracked: tuple[str, ...] = TRACKED,
) -> subprocess.CompletedProcess[str]:
    """``python -m mlops_lr -m +sweep=bits`` on the joblib launcher (2 parallel workers),
    tracked (on diabetes unless ``tracked`` says otherwise)."""
    command = [
        sys.executable,
        "-m",
        "mlops_lr",
        "-m",
        "+sweep=bits",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.artifacts_dir={tmp_path / 'artifacts'}",
        *tracked,
        *overrides,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "PROJECT_ROOT": str(tmp_path), **(env or {})},
    )


@pytest.mark.parametrize("repetition", [1, 2, 3])
def test_a_parallel_sweep_is_one_parent_run_with_a_child_per_job_and_registers_the_best(
    tmp_path: Path, repetition: int
) -> None:
    """Six jobs on two workers against a store that does not exist yet: no schema race. The
    third time with MLFLOW_RUN_ID set, which makes start_run(parent_run_id=…) resume the parent
    instead of nesting (mlflow #15713)."""
    stray_run = {"MLFLOW_RUN_ID": "0" * 32} if repetition == 3 else {}
    result = sweep(
        tmp_path,
        "quantization.bits=2,3,8",
        "quantization.rounding=nearest,optimal",
        "quantization.granularity=per_feature_pow2",
        "tracking.register_best=true",
        "tracking.max_r2_loss=0.002",
        env=stray_run,
    )
    assert result.returncode == 0, result.stderr
    assert "already exists" not in result.stderr
    client = store(tmp_path)
    (parent,) = [r for r in runs(client) if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs(client) if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "FINISHED"
    assert len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.info.status for r in children} == {"FINISHED"}
    assert sorted(r.info.run_name.split(":")[0] for r in children) == [f"job {n}" for n in range(6)]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert logged == {"sweep_results.csv", "sweep_results.md", "sweep.png"}
    assert parent.data.metrics == {"jobs": 6.0, "failed_jobs": 0.0}

    # The rule picked from the report's rows, and the version points at that job's model.
    rows = pd.read_csv(tmp_path / "sweep" / "sweep_results.csv").to_dict("records")
    best = best_setting(rows, 0.002)
    assert best["r2_float"] - best["r2_quant"] <= 0.002
    assert all(
        row["bits"] >= best["bits"] for row in rows if row["r2_float"] - row["r2_quant"] <= 0.002
    )
    version = client.get_model_version_by_alias("mlops-lr", "champion")
    assert version.run_id == best["mlflow_run_id"]
    assert f"Registered sweep job {best['job']} " in result.stdout


def test_a_failed_job_fails_its_run_and_the_sweeps(tmp_path: Path) -> None:
    result = sweep(
        tmp_path,
        "quantization.bits=4",
        "quantization.rounding=nearest,optimal",
        "quantization.granularity=per_feature_pow2",
        "quantization.max_nodes=1",  # too few for the optimal rounding's search
        "tracking.register_best=true",
    )
    assert result.returncode != 0
    client = store(tmp_path)
    (parent,) = [r for r in runs(client) if "mlflow.parentRunId" not in r.data.tags]
    children = {
        r.info.run_name.split(":")[0]: r
        for r in runs(client)
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert parent.info.status == "FAILED"
    assert children["job 0"].info.status == "FINISHED"
    assert children["job 1"].info.status == "FAILED"
    assert "quantization.max_nodes=1 is too small" in children["job 1"].data.tags["mlops_lr.error"]
    assert "Not registered: a sweep with failed jobs registers nothing" in result.stdout
    assert client.search_registered_models() == []


def test_register_points_the_alias_and_serve_and_predict_use_it(cli, tmp_path: Path) -> None:
    assert cli("stage=quantize", "quantization.bits=4", "tracking=mlflow").returncode == 0
    result = cli("stage=register", "register.model=default-4bit", "tracking=mlflow")
    assert result.returncode == 0, result.stderr
    assert "Registered 'default-4bit' as 'mlops-lr' version 1" in result.stdout
    client = store(tmp_path)
    quantize_run = runs(client)[-1]
    version = client.get_model_version_by_alias("mlops-lr", "champion")
    assert version.run_id == quantize_run.info.run_id  # the run that made it, not a new one
    assert version.source == quantize_run.data.tags["mlops_lr.model_uri"]
    again = cli("stage=register", "register.model=default-4bit", "tracking=mlflow")
    assert "'default-4bit' is 'mlops-lr' version 1 (logged by run" in again.stdout  # no copy

    # A model logged by no run (made untracked) is logged by a register run of its own.
    assert cli("stage=quantize", "quantization.bits=8").returncode == 0
    result = cli("stage=register", "register.model=default-8bit", "tracking=mlflow")
    assert result.returncode == 0, result.stderr
    assert "Registered 'default-8bit' as 'mlops-lr' version 2" in result.stdout
    version = client.get_model_version_by_alias("mlops-lr", "champion")
    assert client.get_run(version.run_id).info.run_name == "register default-8bit"

    artifacts_dir = tmp_path / "artifacts"
    local = load_predictor(artifacts_dir, "default-8bit")
    rows = json.loads((artifacts_dir / "samples.json").read_text())["X"]
    for uri, expected, expected_version in (
        ("models:/mlops-lr@champion", local, 2),
        ("models:/mlops-lr/1", load_predictor(artifacts_dir, "default-4bit"), 1),
    ):
        process, url = _start_server(
            artifacts_dir, tmp_path, "tracking=mlflow", f"serve.model={uri}"
        )
        try:
            request = urllib.request.Request(
                f"{url}/predict",
                data=json.dumps({"inputs": rows}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                served = json.load(response)["predictions"]
            with urllib.request.urlopen(f"{url}/v2/models/mlops-lr", timeout=10) as response:
                metadata = json.load(response)
            assert metadata["name"] == "mlops-lr"
            assert metadata["versions"] == [str(expected_version)]  # the registered one
        finally:
            _stop(process)
        assert served == expected.predict(np.array(rows, dtype=float)).tolist()

    result = cli("stage=predict", "predict.model=models:/mlops-lr@champion", "tracking=mlflow")
    assert result.returncode == 0, result.stderr
    assert str(local.predict(np.array(rows, dtype=float))) in result.stdout


def test_register_refuses_a_stale_model_and_unknown_registry_names(cli, tmp_path: Path) -> None:
    assert cli("stage=quantize").returncode == 0
    assert cli("stage=train", "model=ridge").returncode == 0
    result = cli("stage=register", "tracking=mlflow")
    assert_one_line_error(result, "quantized model 'default-8bit' is stale", exit_code=4)
    result = cli("stage=serve", "tracking=mlflow", "serve.model=models:/nobody@champion")
    assert_one_line_error(result, "loading models:/nobody@champion: ", exit_code=5)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("serve.model=models:/mlops-lr@champion",), "serve.model='models:/mlops-lr@champion'"),
        (("tracking=mlflow", "tracking.tracking_uri=file:mlruns"), "refuses the file store"),
        (("tracking=mlflow", "tracking.alias=latest"), "tracking.alias='latest' is not allowed"),
        (("tracking=mlflow", "tracking.registered_model=a/b"), "letters, digits, spaces"),
        (("tracking=mlflow", "tracking.max_r2_loss=-1"), "tracking.max_r2_loss=-1.0"),
        (("serve.model=models:/x@",), "serve.model='models:/x@' is not allowed"),
        (("tracking=mlflow", "tracking.tracking_uri=mlruns"), "refuses the file store"),
        (("tracking=mlflow", "tracking.tracking_uri=sqlite:///:memory:"), "keeps nothing"),
        (("tracking=mlflow", "tracking.tracking_uri=sqlite:///"), "keeps nothing"),
        (("tracking=mlflow", "tracking.tracking_uri='sqlite:///:memory:?cache=shared'"), "keeps"),
        (("tracking=mlflow", "tracking.tracking_uri=sqlite:///%3Amemory%3A"), "keeps nothing"),
        (("tracking=mlflow", "tracking.registered_model='a#b'"), "letters, digits, spaces"),
        (
            ("tracking=mlflow", "tracking.register_best=true", "tracking.log_models=false"),
            "false with tracking.log_models=false",
        ),
    ],
)
def test_impossible_tracking_settings_are_one_line(cli, overrides, expected) -> None:
    result = cli("stage=serve", *overrides)
    assert_one_line_error(result, expected, exit_code=2)


def test_an_unreachable_server_is_one_line_and_leaves_no_artifact(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = cli("stage=train", *TRACKED, "tracking.tracking_uri=http://127.0.0.1:9")
    assert_one_line_error(result, "experiment 'mlops-lr': API request to", exit_code=5)
    assert not (tmp_path / "artifacts" / "model.joblib").exists()


@pytest.mark.parametrize(
    ("store_uri", "expected"),
    [
        ("foo://bar", "the tracking store foo://bar: "),
        ("postgresql://user@127.0.0.1:9/db", "needs the Python module psycopg"),
        ("sqlite:///{tmp_path}/not-a-database.db", "file is not a database"),
        ("sqlite:///{tmp_path}", "is a directory"),
    ],
)
def test_a_store_that_cannot_be_used_is_one_line(
    cli, tmp_path: Path, store_uri: str, expected: str
) -> None:
    (tmp_path / "not-a-database.db").write_bytes(b"these bytes are no SQLite database" * 100)
    uri = store_uri.format(tmp_path=tmp_path)
    result = cli("stage=train", *TRACKED, f"tracking.tracking_uri={uri}")
    assert_one_line_error(result, expected, exit_code=5)
    assert not (tmp_path / "artifacts" / "model.joblib").exists()


def test_a_stage_in_a_process_with_its_own_mlflow_state(cli, tmp_path: Path) -> None:
    """Called from a script: another experiment set is overridden; an active run of the
    script's own is refused, not ended (nesting is said with tracking.parent_run_id)."""
    client = store(tmp_path)
    mine = client.create_experiment("mine")
    mlflow.set_experiment(experiment_id=mine)
    assert cli("stage=train", *TRACKED).returncode == 0
    with mlflow.start_run(experiment_id=mine) as outer:
        result = cli("stage=train", *TRACKED)
        assert_one_line_error(result, "an MLflow run (", exit_code=5)
        assert mlflow.active_run().info.run_id == outer.info.run_id
        result = cli("stage=train", *TRACKED, f"tracking.parent_run_id={outer.info.run_id}")
    assert_one_line_error(result, "is active in this process", exit_code=5)
    assert client.get_run(outer.info.run_id).info.status == "FINISHED"  # ended by its owner
    (train,) = runs(client)
    assert train.info.status == "FINISHED"
    result = cli("stage=train", *TRACKED, f"tracking.parent_run_id={outer.info.run_id}")
    assert result.returncode == 0, result.stderr
    nested = client.get_run(runs(client)[-1].info.run_id)
    assert nested.data.tags["mlflow.parentRunId"] == outer.info.run_id


def test_a_tracked_sweep_with_an_impossible_setting_stops_before_any_job(tmp_path: Path) -> None:
    result = sweep(tmp_path, "quantization.bits=2,4", "tracking.alias=latest")
    assert_one_line_error(result, "tracking.alias='latest' is not allowed", exit_code=2)
    assert not (tmp_path / "sweep" / "0").exists()


def test_a_sweep_with_per_job_values_keeps_its_parent_and_names(tmp_path: Path) -> None:
    """Overrides that only a job can resolve (${hydra:…}) neither stop the parent run nor
    name it; a job of an earlier, untracked sweep in the same directory is not registered."""
    first = sweep(
        tmp_path, "quantization.bits=2,4", "quantization.rounding=nearest", "tracking=none"
    )
    assert first.returncode == 0, first.stderr
    result = sweep(
        tmp_path,
        "quantization.bits=16",
        "quantization.rounding=nearest",
        "quantization.granularity=per_tensor",
        "paths.quantized_dir=${hydra:runtime.output_dir}/q",
        "tracking.run_name=bits-${quantization.bits}-job-${hydra:job.num}",
        "tracking.register_best=true",
        "tracking.max_r2_loss=1",
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    client = store(tmp_path)
    (parent,) = [r for r in runs(client) if "mlflow.parentRunId" not in r.data.tags]
    (child,) = [r for r in runs(client) if r.info.run_id != parent.info.run_id]
    assert parent.info.run_name.startswith("sweep ")
    assert "paths.quantized_dir=${hydra:runtime.output_dir}/q" in parent.data.params["overrides"]
    assert child.info.run_name == "bits-16-job-0"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "FINISHED"


def test_a_tracked_regularisation_path_keeps_one_store_for_jobs_with_their_own_artifacts(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable,
        "-m",
        "mlops_lr",
        "-m",
        "+sweep=alpha",
        "model.alpha=0.1,10",
        "quantization.bits=4",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *TRACKED,
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "PROJECT_ROOT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sweep" / "0" / "artifacts" / "model.joblib").exists()
    assert not list((tmp_path / "sweep").rglob("mlflow.db"))
    client = store(tmp_path)  # <PROJECT_ROOT>/artifacts/mlflow.db
    (parent,) = [r for r in runs(client) if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs(client) if r.info.run_id != parent.info.run_id]
    assert sorted(r.data.params["model.alpha"] for r in children) == ["0.1", "10.0"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"


def test_best_setting_is_the_smallest_width_within_the_bound_then_the_best_r2() -> None:
    def row(job: int, bits: int, r2_quant: float, status: str = "ok") -> dict:
        return {"job": job, "bits": bits, "r2_float": 0.6, "r2_quant": r2_quant, "status": status}

    rows = [
        row(0, 2, 0.50),
        row(1, 4, 0.5985),
        row(2, 4, 0.5995),
        row(3, 4, 0.5995),
        row(4, 8, 0.6),
        row(5, 3, 0.6, status="failed"),
    ]
    assert best_setting(rows, 0.001)["job"] == 2  # 4 bits, the higher R², the first job
    assert best_setting(rows, 0.0)["job"] == 4
    assert best_setting(rows, 0.2)["job"] == 0
    assert best_setting(rows[:1], 0.01) is None
    assert best_setting([row(0, 2, 0.7)], 0.0)["job"] == 0  # a gain is within any bound


def test_a_classifiers_best_setting_is_judged_by_accuracy() -> None:
    def row(job: int, bits: int, accuracy: float) -> dict:
        return {
            "job": job,
            "bits": bits,
            "task": "classification",
            "accuracy_float": 0.96,
            "accuracy_quant": accuracy,
            "status": "ok",
        }

    rows = [row(0, 2, 0.90), row(1, 4, 0.95), row(2, 4, 0.96), row(3, 8, 0.96)]
    assert best_setting(rows, 0.0)["job"] == 2  # the smallest width that loses nothing
    assert best_setting(rows, 0.02)["job"] == 2  # at 4 bits, the higher accuracy
    assert best_setting(rows, 0.1)["job"] == 0
    assert best_setting(rows[:2], 0.0) is None


def test_a_classifiers_sweep_registers_its_most_accurate_smallest_model(tmp_path: Path) -> None:
    result = sweep(
        tmp_path,
        "quantization.bits=2,8",
        "quantization.rounding=hessian",
        "quantization.granularity=per_feature_pow2",
        "tracking.register_best=true",
        tracked=("tracking=mlflow", "dataset=breast_cancer", "model=logistic_regression"),
    )
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(tmp_path / "sweep" / "sweep_results.csv").to_dict("records")
    best = best_setting(rows, 0.0)
    assert best["accuracy_quant"] >= best["accuracy_float"]
    version = store(tmp_path).get_model_version_by_alias("mlops-lr", "champion")
    assert version.run_id == best["mlflow_run_id"]
    assert f"Registered sweep job {best['job']} " in result.stdout
    assert "accuracy" in result.stdout
