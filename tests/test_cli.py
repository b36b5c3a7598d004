"""The CLI end to end on real Kodak images, and its handling of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import assert_one_line_error, run_cli
from PIL import Image


def test_codecs_end_to_end_then_report_combines_runs(monkeypatch, capsys, kodak_dir, tmp_path):
    data = str(kodak_dir.parent)
    base = ["codecs", "--dataset", "kodak", "--data-dir", data, "--limit", "3", "--workers", "2"]
    code, out, err = run_cli(
        monkeypatch, capsys, *base, "-c", "jpeg", "-c", "png", "--quality", "10:90:20",
        "--out", str(tmp_path / "a"), "--latex",
    )  # fmt: skip
    assert code == 0, err
    run_a = tmp_path / "a"
    for name in ("results.parquet", "results.csv", "report.md", "report.tex", "run.json",
                 "rd_psnr_kodak.png", "rd_psnr_kodak.svg", "rd_ms_ssim_db_kodak.svg"):  # fmt: skip
        assert (run_a / name).exists(), name
    table = pd.read_parquet(run_a / "results.parquet")
    assert len(table) == 3 * (5 + 1)
    assert set(table["image"]) == {"kodim01", "kodim02", "kodim03"}
    assert json.loads((run_a / "run.json").read_text())["status"] == "complete"

    code, _, err = run_cli(monkeypatch, capsys, *base, "-c", "webp", "--quality", "20,60",
                           "--out", str(tmp_path / "b"))  # fmt: skip
    assert code == 0, err
    combined = tmp_path / "combined"
    code, out, err = run_cli(
        monkeypatch, capsys, "report", str(run_a), str(tmp_path / "b"), "--out", str(combined)
    )
    assert code == 0, err
    text = (combined / "report.md").read_text()
    assert "webp" in text and "jpeg" in text and "BD-rate" in text


def test_interrupted_run_keeps_rows_and_resumes(monkeypatch, capsys, kodak3, tmp_path):
    import benchmarks.runs.codec_runs as runner

    real = runner.run_tasks

    def interrupted(*args, **kwargs):
        for i, rows in enumerate(real(*args, **kwargs)):
            yield rows
            if i == 1:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    args = ["codecs", "--dataset", "kodak", "--data-dir", str(kodak3), "--limit", "3", "-c", "jpeg",
            "--quality", "30,60", "--workers", "1", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(runner, "run_tasks", interrupted)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 130 and "interrupted" in err
    kept = pd.read_parquet(out / "results.parquet")
    assert len(kept) == 4  # two images x two qualities finished before the interrupt
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"

    monkeypatch.setattr(runner, "run_tasks", real)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "resuming: 4 rows" in err
    final = pd.read_parquet(out / "results.parquet")
    assert len(final) == 6 and final.groupby(["image", "value"]).size().max() == 1


def test_truncated_png_is_a_clear_error(monkeypatch, capsys, kodak_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    data = (kodak_dir / "kodim01.png").read_bytes()
    (folder / "broken.png").write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", f"folder:{folder}",
                           "-c", "jpeg", "--out", str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "broken.png")


def test_empty_folder_is_a_clear_error(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", f"folder:{tmp_path}/empty",
                           "-c", "jpeg", "--out", str(tmp_path / "o"))  # fmt: skip
    assert_one_line_error(code, err, "empty")


def test_wrong_checksum_is_a_clear_error(monkeypatch, capsys, kodak3, tmp_path):
    target = kodak3 / "kodak" / "kodim02.png"
    pixels = np.asarray(Image.open(target)).copy()
    pixels[0, 0, 0] ^= 1  # a valid PNG, one pixel different from the published file
    Image.fromarray(pixels).save(target)
    args = ["codecs", "--dataset", "kodak", "--data-dir", str(kodak3), "--limit", "3"]
    code, _, err = run_cli(monkeypatch, capsys, *args, "-c", "jpeg", "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "kodim02.png", "checksum")


def test_unknown_codec_is_a_clear_error(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "-c", "jpegg", "--out", str(tmp_path))
    assert_one_line_error(code, err, "unknown method 'jpegg'", "jpeg")


def test_quality_out_of_range_is_a_clear_error(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "-c", "webp", "--quality", "50:150:50",
                           "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(code, err, "quality 150 out of range for 'webp'")
    assert not (tmp_path / "results.parquet").exists()


def test_report_on_missing_results_is_a_clear_error(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "report", str(tmp_path / "nothing"))
    assert_one_line_error(code, err, "no results")


def test_data_list_shows_verified_kodak(monkeypatch, capsys, kodak_dir):
    code, out, _ = run_cli(monkeypatch, capsys, "data", "list", "--data-dir", str(kodak_dir.parent))
    assert code == 0
    kodak_line = next(line for line in out.splitlines() if line.startswith("| kodak "))
    assert "True" in kodak_line and "--data-dir" in kodak_line


def test_zoo_list_names_every_file_with_its_reference_nll(monkeypatch, capsys):
    from vlae_models import zoo

    code, out, _ = run_cli(monkeypatch, capsys, "zoo", "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == set(zoo.index())
    model_column = {line.index(f" {zoo.index()[name]['model']} ") for name, line in lines.items()}
    assert len(model_column) == 1, "the model column starts at one offset, long names too"
    whole_split = zoo.index()["vlae-binarized-mnist"]["reference"]["test/10000/iwae"]
    assert (
        f"test/10000/iwae: NLL {whole_split['nll_nats']:.2f} nats" in lines["vlae-binarized-mnist"]
    )


def test_codec_listing_names_every_codec(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "codecs", "--list")
    assert code == 0
    for name in (
        "jpeg",
        "jpeg444",
        "webp",
        "avif",
        "jpeg2000",
        "jxl",
        "png",
        "gzip",
        "bz2",
        "lzma",
    ):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


NAME_AND_PATH_ERRORS = [
    ["--help"], ["codecs", "--list"], ["codecs", "--help"],
    ["codecs", "-c", "nope"], ["codecs", "-c", "jpeg", "--metrics", "nope"],
    ["codecs", "-c", "png", "--dataset", "nope"],
    ["codecs", "-c", "png", "--dataset", "folder:/no/such/folder"],
    ["codecs", "-c", "png", "--data-dir", "/no/such/folder"],
    ["fuzz", "-c", "nope"], ["realism", "-c", "nope"],
    ["sweep", "/no/such/spec.toml", "--out", "unused"],
    ["sweep", "README.md", "--out", "unused"],  # not TOML
    ["eval", "/no/such/checkpoint.safetensors", "--dataset", "mnist", "--out", "unused"],
    ["train", "beta-vae", "--dataset", "nope", "--out", "unused"],
]  # fmt: skip


def test_help_listing_and_name_and_path_errors_load_no_heavy_library(tmp_path):
    """Start-up speed as a property, not a timing: these answers (a typo in a method, metric
    or dataset name, a missing spec, folder or checkpoint) must not import torch, pandas,
    seaborn or matplotlib (which took 7.5 s of every command before, and 4-7 s of a one-line
    error); ``report`` of a missing folder reads no results and loads no figure library."""
    code = (
        "import json, sys\n"
        "from benchmarks.cli import main\n"
        "codes = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    sys.argv = ['vlae-bench', *args]\n"
        "    try:\n        main()\n    except SystemExit as end:\n"
        "        codes.append(end.code)\n"
        "    heavy = {'torch', 'pandas', 'seaborn', 'matplotlib'} & set(sys.modules)\n"
        "    print('HEAVY', args, sorted(heavy), file=sys.stderr)\n"
        "print('CODES', json.dumps(codes), file=sys.stderr)\n"
    )
    cases = [*NAME_AND_PATH_ERRORS, ["report", str(tmp_path / "missing")]]
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], capture_output=True,
                          text=True, cwd=Path(__file__).parents[1])  # fmt: skip
    lines = done.stderr.splitlines()
    heavy = [line for line in lines if line.startswith("HEAVY")]
    assert len(heavy) == len(cases), done.stderr[-800:]
    assert all(line.endswith("[]") for line in heavy[:-1]), "\n".join(heavy)
    assert heavy[-1].endswith("['pandas']") or heavy[-1].endswith("[]"), heavy[-1]
    codes = json.loads(next(line for line in lines if line.startswith("CODES"))[6:])
    assert codes == [0, 0, 0] + [2] * (len(cases) - 3), done.stderr[-800:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == len(cases) - 3, errors
