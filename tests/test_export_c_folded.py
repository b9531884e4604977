"""Integer-only C of folded models: categorical inputs as codes (enums and ``_code`` lookups),
missing numbers as NaN, the tables in the overflow proof; main.c reading CSV rows.

Real gcc, real data (palmerpenguins), the synthetic mixed table and hand-built models with
texts that need escaping; every build uses the strict flags, and each model is also built
with AddressSanitizer + UndefinedBehaviorSanitizer. gcc is required: these tests fail
without it, they never skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_lr import artifacts, training
from mlops_lr.export_c import as_c_reads, c_identifier, csv_rows, render_header, render_main
from mlops_lr.fixed_point import (
    INPUT_LIMIT,
    INT64_MAX,
    FixedPointPlan,
    c_inputs,
    input_ranges,
    plan_fixed_point,
)
from mlops_lr.folded import NUMERIC, CategoricalInput, FoldedModel, NumericInput
from mlops_lr.predictor import LinearPredictor, load_predictor
from mlops_lr.quantize import QuantizationSpec, QuantizedLinearModel, default_spec
from mlops_lr.quantized_folded import QuantizedFoldedModel, calibrate, quantize_folded
from tests.conftest import (
    SANITIZERS,
    STRICT_FLAGS,
    compile_c,
    mixed_table,
    penguin_overrides,
    train_and_quantize,
)

BUILDS = {"strict-O2": STRICT_FLAGS, "asan+ubsan": STRICT_FLAGS + SANITIZERS}
TAG = "default-8bit"
# Categories a C identifier or string literal must not take as they are: quotes, backslashes,
# a trigraph, UTF-8, a leading digit, two that collide after sanitising, two that would be
# the MISSING constant, a comment terminator, a comma, a line end, a tab and the empty text.
TRICKY = (
    'a"b',
    "back\\slash",
    "??=",
    "ünïcode",
    "1st",
    "a b",
    "a_b",
    "missing",
    "MISSING",
    "*/ #error",
    "comma, inside",
    "new\nline",
    "tab\there",
    "",
)


def _run(executable: Path, data: str | bytes, *arguments: str) -> subprocess.CompletedProcess:
    stdin = data.encode() if isinstance(data, str) else data
    return subprocess.run(
        [str(executable), *arguments], input=stdin, capture_output=True, check=False
    )


def _predictions(executable: Path, data: str | bytes, *arguments: str) -> np.ndarray:
    result = _run(executable, data, *arguments)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return np.array([float.fromhex(line) for line in result.stdout.decode().split()])


@dataclass(frozen=True)
class Export:
    """A quantized folded model with its plan, its header and main.c compiled both ways."""

    layout: FoldedModel
    plan: FixedPointPlan
    header: str
    prefix: str
    executables: dict[str, Path]

    def numpy(self, table: Any) -> np.ndarray:
        """The Python model of the C arithmetic on ``table`` as the C reads it."""
        return self.plan.predict(*c_inputs(self.layout, as_c_reads(self.layout, table)))


def _export(directory: Path, quantized: QuantizedFoldedModel, max_abs: np.ndarray) -> Export:
    directory.mkdir(parents=True, exist_ok=True)
    plan = plan_fixed_point(quantized, max_abs)
    prefix = c_identifier("test-model")
    names = quantized.layout.feature_names
    header = render_header(plan, prefix, names, "test")
    (directory / f"{prefix}.h").write_bytes(header.encode())
    (directory / "main.c").write_bytes(render_main(plan, prefix, f"{prefix}.h", names).encode())
    executables = {
        build: compile_c(directory, "main.c", flags, f"predict-{build}")
        for build, flags in BUILDS.items()
    }
    return Export(quantized.layout, plan, header, prefix, executables)


def _trained(directory: Path, overrides: tuple[str, ...]) -> tuple[Any, LinearPredictor, Any]:
    """Train and quantize (8 bits) with the CLI's ``overrides``; the quantized model, its
    predictor and the split it was made from."""
    config = train_and_quantize(directory, *overrides)
    _, split = training.prepare_data(config)
    quantized = artifacts.load_quantized(directory / "quantized" / TAG)
    return quantized, load_predictor(directory, TAG), split


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory, penguins_csv: Path):
    directory = tmp_path_factory.mktemp("penguins-c")
    quantized, predictor, split = _trained(
        directory / "artifacts", penguin_overrides(penguins_csv, "model=ridge")
    )
    export = _export(directory / "c", quantized, input_ranges(quantized.layout, split.train))
    return export, predictor, split, directory / "artifacts"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory):
    """The synthetic table: missing numbers (one input with a missing indicator, two with
    fills only), a 1e6 offset and three text columns, one with a late category."""
    directory = tmp_path_factory.mktemp("mixed-c")
    mixed_table(3000, seed=5, late_category=True).to_csv(directory / "mixed.csv", index=False)
    quantized, predictor, split = _trained(
        directory / "artifacts",
        (
            "dataset=csv",
            f"dataset.path={directory / 'mixed.csv'}",
            "dataset.target=y",
            "preprocess=standard",
            "preprocess.add_indicator=true",
            "model=ridge",
            "quantization.rounding=hessian",  # 3x faster than optimal here; the C is the same
        ),
    )
    export = _export(directory / "c", quantized, input_ranges(quantized.layout, split.train))
    return export, predictor, split


def _tricky_model(rng: np.random.Generator) -> tuple[QuantizedFoldedModel, pd.DataFrame]:
    """A hand-built model: a numeric input without a fill, one with a fill and an indicator,
    and two categorical inputs whose names collide after sanitising, one with the tricky
    categories and one with ``""``, ``missing`` and ``MISSING``; quantized on ``train``."""
    categories = ("", "missing", "MISSING")
    folded = FoldedModel(
        intercept=3.0,
        inputs=(
            NumericInput("x", 0.75),
            CategoricalInput("kind 1", TRICKY, rng.normal(size=len(TRICKY)), -0.4, 0.3),
            NumericInput("y", -2.5, fill=1.5, indicator=0.6),
            CategoricalInput("kind-1", categories, np.array([1.0, -1.0, 0.5]), 0.25, -0.75),
        ),
    )
    rows = 400
    y = rng.normal(size=rows)
    y[rng.random(rows) < 0.2] = np.nan
    train = pd.DataFrame(
        {
            "x": rng.normal(size=rows) * 10,
            "kind 1": rng.choice(np.array(TRICKY, dtype=object), rows),
            "y": y,
            "kind-1": rng.choice(np.array(categories, dtype=object), rows),
        }
    )
    return _by_hand(folded, train), train


def _by_hand(folded: FoldedModel, train: pd.DataFrame) -> QuantizedFoldedModel:
    """``folded`` quantized (default 8 bits) on the training rows ``train``."""
    centred, moments = calibrate(folded, train)
    return quantize_folded(centred, default_spec(8), moments)


HARNESS = """#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "{header}"

static int (*const lookups[])(const char *) = {{{lookups}}};

/* lookup: NUL-terminated records <table digit><N: NULL | T: the text that follows>, one code
 * per output line. predict: lines of N_NUMERIC hex floats and N_CATEGORICAL raw codes. */
int main(int argc, char **argv)
{{
    static char input[1 << 16];
    size_t length = fread(input, 1, sizeof input - 1, stdin), start = 0;
    char *cursor = input, *end;
    double numeric[{n_numeric}];
    int codes[{n_categorical}], j;
    input[length] = '\\0';
    if (argc == 2 && strcmp(argv[1], "lookup") == 0) {{
        while (start < length) {{
            const char *record = input + start;
            printf("%d\\n", lookups[record[0] - '0'](record[1] == 'N' ? NULL : record + 2));
            start += strlen(record) + 1;
        }}
        return 0;
    }}
    for (;;) {{
        for (j = 0; j < {n_numeric}; ++j) {{
            numeric[j] = strtod(cursor, &end);
            if (end == cursor) {{
                return 0;
            }}
            cursor = end;
        }}
        for (j = 0; j < {n_categorical}; ++j) {{
            codes[j] = (int)strtol(cursor, &cursor, 10);
        }}
        printf("%a\\n", {prefix}_predict(numeric, codes));
    }}
}}
"""


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory):
    """The hand-built model with its header and a harness calling the lookups and predict
    with raw codes, compiled both ways."""
    directory = tmp_path_factory.mktemp("tricky-c")
    quantized, train = _tricky_model(np.random.default_rng(3))
    export = _export(directory, quantized, input_ranges(quantized.layout, train))
    lookups = re.findall(r"static inline int (\w+)\(const char \*text\)", export.header)
    (directory / "harness.c").write_text(
        HARNESS.format(
            header=f"{export.prefix}.h",
            lookups=", ".join(lookups),
            n_numeric=len(export.plan.codes),
            n_categorical=len(export.plan.tables),
            prefix=export.prefix,
        )
    )
    harnesses = {
        build: compile_c(directory, "harness.c", flags, f"harness-{build}")
        for build, flags in BUILDS.items()
    }
    return export, quantized, train, harnesses


def _numeric_names(layout: FoldedModel) -> list[str]:
    return [item.name for item in layout.inputs if item.kind == NUMERIC]


def _numeric_weights(folded: FoldedModel) -> np.ndarray:
    return np.array([item.weight for item in folded.inputs if item.kind == NUMERIC])


def _with_extremes(table: pd.DataFrame, layout: FoldedModel) -> pd.DataFrame:
    """``table`` and a copy of it whose numeric cells cycle through NaN, ±inf, ±1e300, a
    denormal, -0.0 and values far outside the training range."""
    values = [np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324, -0.0, 0.5, -2.5e9]
    extreme = table.assign(
        **{
            name: [values[(row + j) % len(values)] for row in range(len(table))]
            for j, name in enumerate(_numeric_names(layout))
        }
    )
    return pd.concat([table, extreme], ignore_index=True)


def _exact_accumulators(plan: FixedPointPlan, numeric: np.ndarray, codes: np.ndarray) -> list:
    """``acc + b`` of each row summed as Python integers (no int64 sum that could wrap)."""
    missing = np.isnan(numeric)
    fills = np.array([np.nan if fill is None else fill for fill in plan.fills])
    q = plan.quantize_inputs(np.where(missing, fills, numeric))
    rows = []
    for q_row, missing_row, code_row in zip(q, missing, codes, strict=True):
        total = plan.intercept + sum(
            int(w) * int(v) for w, v in zip(plan.weights, q_row, strict=True)
        )
        total += sum(int(i) for i, m in zip(plan.indicators, missing_row, strict=True) if i and m)
        total += sum(
            table.entries[int(c) if 0 <= c <= table.unknown_code else table.unknown_code]
            for table, c in zip(plan.tables, code_row, strict=True)
        )
        rows.append(total)
    return rows


# --- penguins and the mixed table: compiled C against the numpy model ----------------------


@pytest.mark.parametrize("build", BUILDS)
def test_penguins_c_is_bit_exact_and_within_the_bound(penguins, build: str) -> None:
    export, predictor, split, _ = penguins
    extra = pd.DataFrame(
        {
            "species": ["Emperor", "", None, "Adelie", "adelie", "Gentoo", "Chinstrap"],
            "island": [None, "Atlantis", "Dream", "", "Biscoe", "Torgersen", "Dream"],
            "bill_length_mm": [np.nan, 40.0, np.nan, 39.1, 50.0, 45.0, 48.0],
            "bill_depth_mm": [17.0, np.nan, np.nan, 18.7, 15.0, 14.0, 18.0],
            "flipper_length_mm": [190.0, 200.0, np.nan, 181.0, 220.0, 215.0, 195.0],
            "sex": ["male", "female", None, "", "unknown", "male", "female"],
            "year": [2007.0, np.nan, np.nan, 2008.0, 2009.0, 2007.0, 2008.0],
        }
    )
    in_range = pd.concat([split.test, extra], ignore_index=True)
    table = _with_extremes(in_range, export.layout)

    predictions = _predictions(export.executables[build], csv_rows(export.layout, table))

    assert predictions.tobytes() == export.numpy(table).tobytes()  # bit for bit
    assert np.isfinite(predictions).all()  # every numeric input has a fill
    expected = predictor.predict_table(as_c_reads(export.layout, in_range))
    weights = _numeric_weights(predictor.folded)
    bound = export.plan.error_bound(weights, float(np.max(np.abs(expected))))
    assert np.max(np.abs(predictions[: len(in_range)] - expected)) <= bound < 1e-3


@pytest.mark.parametrize("build", BUILDS)
def test_mixed_table_c_is_bit_exact_with_unseen_categories_and_missing_values(
    mixed, build: str
) -> None:
    export, predictor, split = mixed
    layout = export.layout
    # size had missing training values (an indicator); offset and count are only filled.
    indicators = [item.indicator is not None for item in layout.inputs if item.kind == NUMERIC]
    assert indicators == [True, False, False]
    extra = pd.DataFrame(
        {
            "size": [np.nan, 55.0, np.nan, 40.0, np.nan, 61.0],
            "offset": [1e6, np.nan, np.nan, 1e6 + 0.5, 1e6 - 2.0, 1e6],
            "count": [3.0, 7.0, np.nan, np.nan, 0.0, 20.0],
            "colour": ["never-seen", "", None, np.nan, "c00", "late"],
            "grade": ["D", "A", "", None, "B", "C"],
            "region": ["r00", "r99", None, "", "R00", "r29"],
        }
    )
    in_range = pd.concat([split.test, extra], ignore_index=True)
    table = _with_extremes(in_range, layout)

    predictions = _predictions(export.executables[build], csv_rows(layout, table))

    assert predictions.tobytes() == export.numpy(table).tobytes()
    expected = predictor.predict_table(as_c_reads(layout, in_range))
    weights = _numeric_weights(predictor.folded)
    bound = export.plan.error_bound(weights, float(np.max(np.abs(expected))))
    # The 1e6-offset input keeps 10 fractional bits: its steps of 2^-10 dominate the bound.
    assert np.max(np.abs(predictions[: len(in_range)] - expected)) <= bound < 0.01
    # An unseen category, "", None and NaN: the unknown entry, then the missing one.
    colour = export.plan.tables[0]
    codes = c_inputs(layout, as_c_reads(layout, extra))[1]
    assert list(codes[:4, 0]) == [colour.unknown_code] + [colour.missing_code] * 3


# --- the example program's CSV --------------------------------------------------------------


def test_main_c_reads_quoted_csv(penguins) -> None:
    export = penguins[0]
    rows = [  # the cells as text (None: an empty, unquoted cell) and how they are written
        (["Adelie", "Torgersen", "39.1", "18.7", "181", "male", "2007"], None),
        (["Adelie", "Torgersen", "39.1", "18.7", "181", "male", "2007"], '"{}"'),
        (["Gentoo", "Biscoe", " 0x1.68p+5 ", "14", "2.1e2", "female", "2009"], None),
        (['Ade"lie', "Dream, north", "40", "17", "190", "male", "2008"], '"{}"'),
        (["multi\nline", "Dream", "40", "17", "190", "", "2008"], '"{}"'),
        ([None, None, None, None, None, None, None], None),
        (["", "", "", "", "", "", ""], '"{}"'),
        (["Chinstrap", "Dream", "nan", "inf", "-inf", "female", "2008"], None),
    ]
    lines = []
    for cells, quoting in rows:
        written = [
            "" if cell is None else (quoting or "{}").format(cell.replace('"', '""'))
            for cell in cells
        ]
        lines.append(",".join(written))
    text = "\n".join(lines[:2]) + "\r\n" + "\n".join(lines[2:])  # a CRLF, no final line end

    predictions = _predictions(export.executables["strict-O2"], text)

    kinds = export.plan.kinds
    numeric = [
        [
            np.nan if not c else float.fromhex(c) if "0x" in c else float(c)
            for c, kind in zip(cells, kinds, strict=True)
            if kind == NUMERIC
        ]
        for cells, _ in rows
    ]
    texts = [
        [c for c, kind in zip(cells, kinds, strict=True) if kind != NUMERIC] for cells, _ in rows
    ]
    codes = [[t.code(c) for t, c in zip(export.plan.tables, row, strict=True)] for row in texts]
    expected = export.plan.predict(np.array(numeric), np.array(codes))
    assert predictions.tobytes() == expected.tobytes()
    assert codes[3][:2] == [export.plan.tables[0].unknown_code, export.plan.tables[1].unknown_code]
    assert codes[5] == codes[6] == [table.missing_code for table in export.plan.tables]


GOOD = "Adelie,Torgersen,39.1,18.7,181,male,2007\n"


@pytest.mark.parametrize(
    ("text", "message", "predicted"),
    [
        ("Adelie,Dream,1,2,3,male\n", "line 1: expected 7 cells", 0),
        (GOOD + "Adelie,Dream,1,2,3,male,2007,9\n", "line 2: expected 7 cells", 1),
        (GOOD + "Adelie,Dream,1,2,x3,male,2007\n", "line 2, cell 5: not a number", 1),
        (GOOD + "Adelie,Dream,1,2, ,male,2007\n", "line 2, cell 5: not a number", 1),
        ('"Adelie,Dream,1,2,3,male,2007\n', "line 1, cell 1: a quoted cell is not closed", 0),
        ('"Adelie"x,Dream,1,2,3,male,2007\n', "line 1, cell 1: text after a closing quote", 0),
        ('Ad"elie,Dream,1,2,3,male\n', "line 1, cell 1: a quote inside an unquoted cell", 0),
        ("Adelie,Dr\0eam,1,2,3,male,2007\n", "line 1, cell 2: a NUL byte", 0),
        (
            "A" * 5000 + ",Dream,1,2,3,male,2007\n",
            "line 1, cell 1: a cell longer than 4095 bytes",
            0,
        ),
        # A quoted line end continues its row (lines 2 and 3): the bad row is on line 5.
        (GOOD + '"a\nb",Dream,1,2,3,male,2007\n' + GOOD + "1,2\n", "line 5: expected 7 cells", 3),
        (GOOD + "\n", "line 2: expected 7 cells", 1),
    ],
)
def test_main_c_refuses_malformed_lines_with_their_number(
    penguins, text: str, message: str, predicted: int
) -> None:
    export = penguins[0]

    result = _run(export.executables["asan+ubsan"], text)

    assert result.returncode == 1
    assert result.stderr.decode() == message + "\n"
    assert len(result.stdout.split()) == predicted  # the rows before it


# --- the lookups, identifiers and string literals -------------------------------------------


@pytest.mark.parametrize("build", BUILDS)
def test_code_lookups_find_every_category_and_nothing_else(tricky, build: str) -> None:
    export, _, _, harnesses = tricky
    unknown = ["zzz", "a", 'a"', "??", "ünïcod", "Ünïcode", " 1st", "1st ", "a\\b", "\x7f"]
    queries = [  # (table, text or None)
        (k, text)
        for k, table in enumerate(export.plan.tables)
        for text in (*table.categories, *unknown, "", None)
    ]
    records = b"".join(
        str(k).encode() + (b"N" if text is None else b"T" + text.encode()) + b"\0"
        for k, text in queries
    )

    result = _run(harnesses[build], records, "lookup")

    assert result.returncode == 0, result.stderr.decode()
    codes = [int(line) for line in result.stdout.split()]
    assert codes == [export.plan.tables[k].code(text) for k, text in queries]
    kind, other = export.plan.tables
    assert [kind.code(text) for text in TRICKY] == list(range(len(TRICKY)))
    assert kind.code("zzz") == kind.unknown_code
    assert kind.code(None) == kind.missing_code
    assert other.code("") == 0  # "" is a category there
    assert other.code("zzz") == other.unknown_code
    assert other.code(None) == other.missing_code


def test_identifiers_are_sanitised_and_unique(tricky) -> None:
    header = tricky[0].header
    constants = re.findall(r"^    (\w+) = \d+,?$", header, re.MULTILINE)
    kind = "MLOPS_LR_TEST_MODEL_KIND_1"
    assert constants == [
        *(
            f"{kind}_{suffix}"
            for suffix in (
                *("A_B", "BACK_SLASH", "___", "_N_CODE", "1ST", "A_B_2", "A_B_3"),
                *("MISSING_2", "MISSING_3", "____ERROR", "COMMA__INSIDE", "NEW_LINE"),
                *("TAB_HERE", "EMPTY", "MISSING", "UNKNOWN"),
            )
        ),
        # "kind-1" is kind_1 after sanitising too: its identifiers are numbered.
        *(
            f"{kind}_2_{suffix}"
            for suffix in ("EMPTY", "MISSING_2", "MISSING_3", "MISSING", "UNKNOWN")
        ),
    ]
    assert "static inline int mlops_lr_test_model_kind_1_code(const char *text)" in header
    assert "static inline int mlops_lr_test_model_kind_1_2_code(const char *text)" in header
    # Texts as escaped literals: no trigraph, the comment terminator inside a string.
    assert r'{"\?\?=", ' in header
    assert "??" not in header
    assert r'{"\303\274n\303\257code", ' in header
    assert r'{"a\"b", ' in header
    assert r'{"back\\slash", ' in header
    assert r'{"new\012line", ' in header
    code = header.split("*/", 1)[1]  # after the opening comment
    assert code.count("/*") == code.count("*/") - code.count('"*/ #error"')


@pytest.mark.parametrize("build", BUILDS)
def test_out_of_range_codes_count_as_unknown(tricky, build: str) -> None:
    export, _, _, harnesses = tricky
    unknown = [table.unknown_code for table in export.plan.tables]
    codes = np.array(
        [
            unknown,
            [-1, -1],
            [unknown[0] + 1, unknown[1] + 1],
            [-(2**31), 2**31 - 1],
            [2**31 - 1, -(2**31)],
            [0, 0],
            [len(TRICKY), 3],  # the missing codes
        ]
    )
    numeric = np.array([[1.0, np.nan]] * len(codes))
    lines = "".join(
        " ".join([*map(float.hex, row), *map(str, code)]) + "\n"
        for row, code in zip(numeric.tolist(), codes.tolist(), strict=True)
    )

    predictions = _predictions(harnesses[build], lines)

    assert predictions.tobytes() == export.plan.predict(numeric, codes).tobytes()
    assert len(set(predictions[:5].tolist())) == 1  # all the unknown entries
    assert len(set(predictions.tolist())) == 3


def test_a_numeric_input_without_a_fill_gives_nan(tricky) -> None:
    export, quantized, train, _ = tricky
    extra = pd.DataFrame(
        {
            "x": [np.nan, 1.0, np.nan],
            "kind 1": ["a b", None, ""],
            "y": [2.0, np.nan, np.nan],
            "kind-1": ["", None, "missing"],
        }
    )
    table = pd.concat([train, extra], ignore_index=True)

    predictions = _predictions(export.executables["strict-O2"], csv_rows(export.layout, table))

    assert predictions.tobytes() == export.numpy(table).tobytes()
    assert np.isnan(predictions[-3])
    assert np.isnan(predictions[-1])
    assert np.isfinite(predictions[-2])
    assert np.isfinite(predictions[: len(train)]).all()  # x is never missing there
    dequantized = quantized.dequantized()
    expected = dequantized.predict(train)
    bound = export.plan.error_bound(_numeric_weights(dequantized), float(np.max(np.abs(expected))))
    assert np.max(np.abs(predictions[: len(train)] - expected)) <= bound


@pytest.mark.parametrize("shape", ["numeric only, with fills", "categorical only"])
def test_models_with_one_kind_of_input(tmp_path: Path, shape: str) -> None:
    rng = np.random.default_rng(11)
    if shape == "categorical only":
        folded = FoldedModel(
            1.0, (CategoricalInput("c", ("x", "y", "z"), np.array([1.0, 2.0, -3.0]), 0.5, -0.5),)
        )
        train = pd.DataFrame({"c": rng.choice(np.array(["x", "y", "z", None]), 200)})
        extra = pd.DataFrame({"c": ["w", "", None, "z"]})
    else:
        folded = FoldedModel(
            2.0,
            (NumericInput("a", 1.5, fill=0.25, indicator=-0.5), NumericInput("b", -0.125, 4.0)),
        )
        a = rng.normal(size=200)
        a[:20] = np.nan
        train = pd.DataFrame({"a": a, "b": rng.normal(size=200)})
        extra = pd.DataFrame({"a": [np.nan, np.inf, 1e300], "b": [np.nan, -np.inf, 5e-324]})
    quantized = _by_hand(folded, train)
    export = _export(tmp_path, quantized, input_ranges(quantized.layout, train))
    table = pd.concat([train, extra], ignore_index=True)

    for executable in export.executables.values():
        predictions = _predictions(executable, csv_rows(export.layout, table))
        assert predictions.tobytes() == export.numpy(table).tobytes()
    assert np.isfinite(predictions).all()


# --- the overflow proof --------------------------------------------------------------------


def test_the_bound_covers_tables_and_indicators_and_holds_on_every_row(
    penguins, mixed, tricky
) -> None:
    for export, table in (
        (penguins[0], penguins[2].test),
        (mixed[0], mixed[2].test),
        (tricky[0], tricky[2]),
    ):
        plan = export.plan
        parts = (
            sum(abs(w) for w in plan.weights) * INPUT_LIMIT,
            sum(abs(i) for i in plan.indicators if i is not None),
            sum(max(map(abs, t.entries)) for t in plan.tables),
            abs(plan.intercept),
        )
        assert plan.bound == sum(parts) <= INT64_MAX
        assert plan.entry_rounding == 0.0  # every entry exact in accumulator units
        rows = _with_extremes(table.reset_index(drop=True), export.layout)
        numeric, codes = c_inputs(export.layout, as_c_reads(export.layout, rows))
        exact = _exact_accumulators(plan, numeric, codes)
        assert max(map(abs, exact)) <= plan.bound
        reference = np.array([float(total) * plan.output_scale for total in exact])
        unfilled = np.isnan(numeric) & np.array([fill is None for fill in plan.fills])
        reference[unfilled.any(axis=1)] = np.nan
        assert plan.predict(numeric, codes).tobytes() == reference.tobytes()


def _near_limit_model() -> QuantizedFoldedModel:
    """A 16-bit numeric code next to a table entry 2^100 times finer: exact units would need
    shift 71, so the unit coarsens until the bound fits (just below 2^63) and the tiny entry
    rounds to 0."""
    layout = FoldedModel(
        0.0, (NumericInput("x", 0.0), CategoricalInput("c", ("p", "q"), np.zeros(2), 0.0, 0.0))
    )
    linear = QuantizedLinearModel(
        codes=np.array([32767, 1, 3, 0, 0], dtype=np.int16),
        scale=1.0,
        zero_point=0,
        exponents=np.array([0, -100, -40, 0, 0], dtype=np.int8),
        intercept=0.5,
        intercept_scale=1.0,
        spec=QuantizationSpec(bits=16, granularity="per_feature_pow2"),
    )
    return QuantizedFoldedModel(layout, linear)


def test_a_near_limit_model_coarsens_the_unit_and_stays_exact(tmp_path: Path) -> None:
    quantized = _near_limit_model()
    export = _export(tmp_path, quantized, np.array([1.0]))
    plan = export.plan

    assert plan.input_bits == (29,)
    assert plan.shifts == (17,)
    assert plan.tables[0].entries == (0, 3 * 2**6, 0, 0)
    assert plan.entry_rounding == 2.0**-54  # the 2^-100 entry, rounded to 0 units of 2^-46
    assert 2**62.99 < plan.bound <= INT64_MAX
    table = pd.DataFrame(
        {"x": [1e300, -1e300, np.inf, 0.999, -0.5, 0.25], "c": ["q", "q", "p", "zzz", None, "p"]}
    )
    for executable in export.executables.values():  # UBSan would report a signed overflow
        predictions = _predictions(executable, csv_rows(export.layout, table))
        assert predictions.tobytes() == export.numpy(table).tobytes()
    numeric, codes = c_inputs(export.layout, table)
    assert max(map(abs, _exact_accumulators(plan, numeric, codes))) > 2**62.99
    inside = table.iloc[3:]
    expected = quantized.dequantized().predict(inside)
    weights = _numeric_weights(quantized.dequantized())
    bound = plan.error_bound(weights, float(np.max(np.abs(expected))))
    assert np.max(np.abs(predictions[3:] - expected)) <= bound


def test_a_model_int64_cannot_hold_is_refused_in_one_line() -> None:
    linear = QuantizedLinearModel(
        codes=np.array([1], dtype=np.int8),
        scale=2.0**-149,
        zero_point=0,
        exponents=np.array([-128], dtype=np.int8),
        intercept=1e308,
        intercept_scale=1.0,
        spec=QuantizationSpec(bits=8, granularity="per_feature_pow2"),
    )
    with pytest.raises(ValueError, match="span too many powers of two for int64") as error:
        plan_fixed_point(linear, np.array([1.0]))
    assert "\n" not in str(error.value)


# --- the stage -----------------------------------------------------------------------------


def test_stage_exports_penguins_as_c(cli, penguins, penguins_csv: Path, tmp_path: Path) -> None:
    own = Path(shutil.copytree(penguins[3], tmp_path / "own"))

    result = cli(
        "stage=export",
        "export.format=c",
        *penguin_overrides(penguins_csv, "model=ridge"),
        f"paths.artifacts_dir={own}",
    )

    assert result.returncode == 0, result.stderr
    directory = own / "export" / TAG / "c"
    assert "3 category tables" in result.stdout
    assert "bit-exact on all 69 test rows" in result.stdout
    report = json.loads((directory / "export.json").read_text())
    assert report["tables"] == {"species": 5, "island": 5, "sex": 4}
    assert report["max_abs_diff_vs_python"] <= report["error_bound"] < 1e-3
    assert report["accumulator_bound"] == penguins[0].plan.bound
    # The example reads the penguins CSV's feature cells as they are.
    compile_c(directory, "main.c", STRICT_FLAGS, "predict")
    frame = pd.read_csv(penguins_csv).dropna(subset=["body_mass_g"])
    features = frame[list(penguins[0].layout.feature_names)]
    text = features.to_csv(index=False, header=False)
    predictions = _predictions(directory / "predict", text)
    assert predictions.tobytes() == penguins[0].numpy(features.reset_index(drop=True)).tobytes()
