"""Outside code joins the suite three ways, and a broken plugin is one line, never a
traceback or a dead pool.

1. An installed package's entry points (the example plugin, `test_example_plugin.py`).
2. A module or a file named at run time: ``--plugin``, or ``plugins = [...]`` in a spec.
3. Python in-process: a script or notebook registers a class, then evaluates with workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.usefixtures("isolated_registries")

CODEC_AND_METRIC = '''
import zlib

import numpy as np

from benchmarks import Codec, Metric, MethodError, ParamSpec, register_method, register_metric


@register_method("zlib-raw")
class ZlibRaw(Codec):
    """zlib of the raw bytes of a 28 x 28 image."""

    param = ParamSpec("level", 0, 9, 6)
    lossless = True

    def encode(self, image):
        return zlib.compress(image.tobytes(), int(self.value))

    def decode(self, data):
        try:
            return np.frombuffer(zlib.decompress(data), np.uint8).reshape(28, 28)
        except (zlib.error, ValueError) as err:
            raise MethodError(f"zlib-raw: {err}") from None


@register_metric("ink-count")
class InkCount(Metric):
    """How many ink pixels the reconstruction has more than the original."""

    columns = {"extra_ink": "lower"}
    data = "binary"

    def score(self, original, reconstruction):
        return {"extra_ink": float(int(reconstruction.sum()) - int(original.sum()))}
'''


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _codecs(monkeypatch, capsys, root: Path, out: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "codecs", "--dataset", "binarized-mnist", "--data-dir",
                   str(root), "--limit", "12", "--out", str(out), *args)  # fmt: skip


def test_a_plugin_file_reaches_the_workers(monkeypatch, capsys, tmp_path, binarized_mnist_dir):
    """``--plugin FILE``: the codec and the metric it registers run in two spawned workers,
    which import the file again, and become rows and a column."""
    plugin = _write(tmp_path, "my_plugin.py", CODEC_AND_METRIC)
    code, out, err = _codecs(monkeypatch, capsys, binarized_mnist_dir.parent, tmp_path / "run",
                             "-c", "zlib-raw=1,9", "-c", "gzip", "--metrics", "ink-count",
                             "--workers", "2", "--plugin", str(plugin))  # fmt: skip
    assert code == 0, err
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    raw = rows[rows["method"] == "zlib-raw"]
    assert sorted(raw["value"].unique()) == [1, 9] and (raw["bit_error_rate"] == 0).all()
    assert (rows["extra_ink"] == 0).all()  # lossless: not one pixel of ink added
    assert len(raw) == 24 and raw["n_bytes"].gt(0).all()
    listing = run_cli(monkeypatch, capsys, "codecs", "--list", "--plugin", str(plugin))[1]
    assert "zlib-raw" in listing and f"plugin {plugin}" in listing and "ink-count" in listing


def test_a_plugin_module_by_name(monkeypatch, capsys, tmp_path, binarized_mnist_dir):
    package = tmp_path / "site" / "my_codecs"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "zlib.py").write_text(CODEC_AND_METRIC)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    code, _, err = _codecs(monkeypatch, capsys, binarized_mnist_dir.parent, tmp_path / "run", "-c",
                           "zlib-raw", "--plugin", "my_codecs.zlib", "--workers", "2")  # fmt: skip
    assert code == 0, err
    assert set(pd.read_parquet(tmp_path / "run" / "results.parquet")["method"]) == {"zlib-raw"}


def test_a_plugin_module_beside_you_imports_as_with_python_m(
    monkeypatch, capsys, tmp_path, binarized_mnist_dir
):
    _write(tmp_path, "beside.py", CODEC_AND_METRIC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    code, _, err = _codecs(monkeypatch, capsys, binarized_mnist_dir.parent, tmp_path / "run", "-c",
                           "zlib-raw", "--plugin", "beside", "--workers", "2")  # fmt: skip
    assert code == 0, err


def test_a_specs_plugins_load_before_its_arms_and_in_its_workers(
    monkeypatch, capsys, tmp_path, binarized_mnist_dir
):
    monkeypatch.setenv("VLAE_BENCH_DATA", str(binarized_mnist_dir.parent))
    (tmp_path / "plugins").mkdir()
    _write(tmp_path / "plugins", "mine.py", CODEC_AND_METRIC)
    spec = _write(tmp_path, "spec.toml", """
        plugins = ["plugins/mine.py"]
        [spec]
        name = "plugin-spec"
        [data]
        datasets = ["binarized-mnist"]
        [eval.passes.codec]
        kind = "codec"
        limit = 8
        metrics = ["ink-count"]
        [[arms]]
        name = "raw"
        codec = "zlib-raw=1,9"
        [[arms]]
        name = "gzip"
        codec = "gzip"
    """)  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, "sweep", str(spec), "--out", str(tmp_path / "o"),
                           "-j", "2")  # fmt: skip
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "o" / "results.parquet")
    assert set(table["arm"]) == {"raw", "gzip"} and "extra_ink" in table
    assert "extra_ink" in (tmp_path / "o" / "report.md").read_text()


SCRIPT = (
    CODEC_AND_METRIC
    + """

def main():
    import sys
    from pathlib import Path

    from benchmarks import evaluate_to

    store = evaluate_to(Path(sys.argv[1]), "binarized-mnist", ["zlib-raw", "gzip"],
                        metrics=["ink-count"], limit=12, workers=2, progress=False,
                        echo=lambda _: None)
    print("ROWS", len(store.frame()))


if __name__ == "__main__":
    main()
"""
)


@pytest.mark.parametrize("how", ["script", "interactive"])
def test_a_class_registered_in_python_reaches_the_workers(how, tmp_path, binarized_mnist_dir):
    """Register, then ``evaluate_to(..., workers=2)``: from a script (the workers import its
    file again) and from an interactive session with no file (the class goes pickled)."""
    env = {**os.environ, "VLAE_BENCH_DATA": str(binarized_mnist_dir.parent)}
    out = tmp_path / "run"
    if how == "script":
        command = [sys.executable, str(_write(tmp_path, "bench.py", SCRIPT)), str(out)]
        given = None
    else:
        command = [sys.executable, "-", str(out)]
        given = SCRIPT.replace('if __name__ == "__main__":\n    main()', "main()")
    done = subprocess.run(command, input=given, capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS 24" in done.stdout
    rows = pd.read_parquet(out / "results.parquet")
    assert (rows[rows["method"] == "zlib-raw"]["bit_error_rate"] == 0).all()


# --- bad plugins: one line naming the plugin, exit 2, nothing written lost -------------------

BAD = {
    "no_decode.py": """
        from benchmarks import Codec, ParamSpec, register_method

        @register_method("half-codec")
        class HalfCodec(Codec):
            param = ParamSpec("level", 0, 9, 1)

            def encode(self, image):
                return image.tobytes()
    """,
    "jpeg_again.py": """
        from baselines.classical import Jpeg
        from benchmarks import register_method

        @register_method("jpeg")
        class MyJpeg(Jpeg):
            name = "jpeg"
    """,
    "twin_a.py": """
        from baselines.classical import Png
        from benchmarks import register_method

        @register_method("twin")
        class TwinA(Png):  # a built-in's subclass is another method, under its own name
            pass
    """,
    "raising_codec.py": """
        from benchmarks import Codec, ParamSpec, register_method

        @register_method("divides")
        class Divides(Codec):
            param = ParamSpec("level", 0, 9, 1)

            def encode(self, image):
                return bytes([1 // 0])

            def decode(self, data):
                return data
    """,
    "psnr_again.py": """
        from benchmarks import Metric, register_metric

        @register_metric("my-psnr")
        class MyPsnr(Metric):
            columns = {"psnr": "lower"}

            def score(self, original, reconstruction):
                return {"psnr": 0.0}

        @register_metric("my-bpp")
        class MyBpp(Metric):
            columns = {"bpp": "lower"}

            def score(self, original, reconstruction):
                return {"bpp": 0.0}
    """,
    "plain_config.py": """
        import dataclasses

        from benchmarks import LatentModel, register_model

        @dataclasses.dataclass
        class PlainConfig:
            latent_dim: int = 4

        @register_model("plain-config", PlainConfig)
        class Plain(LatentModel):
            def forward(self, x):
                return None

            def reconstruct(self, x):
                return x

            def sample(self, n, mode="mean"):
                return None
    """,
    "bad_decode.py": """
        import numpy as np

        from benchmarks import Codec, ParamSpec, register_method

        @register_method("wrong-shape")
        class WrongShape(Codec):
            param = ParamSpec("level", 0, 9, 1)

            def encode(self, image):
                return image.tobytes()

            def decode(self, data):
                return np.zeros((3, 3), np.float32)
    """,
    "raising_metric.py": """
        from benchmarks import Metric, register_metric

        @register_metric("raises")
        class Raises(Metric):
            columns = {"never": "higher"}
            data = "any"

            def score(self, original, reconstruction):
                raise ValueError("this metric is broken")
    """,
    "bad_model.py": """
        import torch
        from torch import nn

        from benchmarks import (LatentModel, ModelConfig, ModelOutput, config_dataclass,
                                likelihood_from_config, register_model)

        @config_dataclass
        class BadConfig(ModelConfig):
            nan: bool = False

        @register_model("bad-model", BadConfig)
        class BadModel(LatentModel):
            def __init__(self, config):
                super().__init__()
                self.config, self.likelihood = config, likelihood_from_config(config)
                self.scale = nn.Parameter(torch.ones(1))

            def forward(self, x):
                per_example = (x * self.scale).flatten(1).sum(1)
                if self.config.nan:
                    return ModelOutput(per_example * float("nan"), per_example)
                return ModelOutput(per_example, per_example.sum())  # a scalar rate

            def reconstruct(self, x):
                return x

            def sample(self, n, mode="mean"):
                return torch.zeros(n, 1, 28, 28)
    """,
    "fails_to_import.py": """
        raise RuntimeError("this plugin cannot start")
    """,
}


@pytest.fixture()
def bad(tmp_path) -> Path:
    for name, text in BAD.items():
        _write(tmp_path, name, text)
    _write(tmp_path, "twin_b.py", BAD["twin_a.py"].replace("TwinA", "TwinB"))
    return tmp_path


def test_a_class_without_the_required_methods(monkeypatch, capsys, bad):
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--list", "--plugin",
                           str(bad / "no_decode.py"))  # fmt: skip
    assert_one_line_error(code, err, "no_decode.py", "half-codec", "does not define decode")


def test_a_name_taken_by_a_built_in_or_another_plugin(monkeypatch, capsys, bad):
    # in a fresh process, where the plugin registers before the built-ins are loaded
    done = subprocess.run([sys.executable, "-m", "benchmarks.cli", "codecs", "--list",
                           "--plugin", str(bad / "jpeg_again.py")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert_one_line_error(done.returncode, done.stderr, "jpeg_again.py",
                          "'jpeg' is already taken by built-in")  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--list", "--plugin",
                           str(bad / "jpeg_again.py"))  # fmt: skip
    assert_one_line_error(code, err, "jpeg_again.py", "'jpeg' is already taken by built-in")
    code, _, err = run_cli(monkeypatch, capsys, "codecs", "--list", "--plugin",
                           str(bad / "twin_a.py"), "--plugin", str(bad / "twin_b.py"))  # fmt: skip
    assert_one_line_error(code, err, "twin_b.py", "'twin' is already taken", "twin_a.py")


def test_a_plugin_that_fails_to_import(monkeypatch, capsys, bad):
    code, _, err = run_cli(monkeypatch, capsys, "models", "--plugin",
                           str(bad / "fails_to_import.py"))  # fmt: skip
    assert_one_line_error(code, err, "fails_to_import.py", "RuntimeError",
                          "this plugin cannot start")  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, "models", "--plugin", "no_such.module")
    assert_one_line_error(code, err, "no_such.module", "no module named 'no_such'")


def test_an_entry_point_that_fails_to_import_names_its_package(tmp_path):
    """An installed package whose entry point cannot import: every command that looks a name
    up says so in one line (and names the way to skip it), the pool never starts."""
    site = tmp_path / "site"
    info = site / "broken_plugin-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[vlae_bench.methods]\nbroken = broken_mod:Codec\n")
    (site / "broken_mod.py").write_text("import numpy_that_does_not_exist\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "benchmarks.cli", "codecs", "--list"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert_one_line_error(done.returncode, done.stderr, "broken-plugin 0.3",
                          "entry point broken = broken_mod:Codec", "numpy_that_does_not_exist",
                          "VLAE_BENCH_SKIP_PLUGINS=broken-plugin")  # fmt: skip
    skipped = subprocess.run(command, capture_output=True, text=True, timeout=120,
                             env={**env, "VLAE_BENCH_SKIP_PLUGINS": "broken-plugin"})  # fmt: skip
    assert skipped.returncode == 0 and "jpeg" in skipped.stdout


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_codec_that_decodes_to_the_wrong_shape_keeps_what_was_written(
    workers, monkeypatch, capsys, bad, binarized_mnist_dir
):
    out = bad / "run"
    code, _, err = _codecs(monkeypatch, capsys, binarized_mnist_dir.parent, out, "-c", "gzip",
                           "-c", "wrong-shape", "--workers", workers, "--plugin",
                           str(bad / "bad_decode.py"))  # fmt: skip
    assert_one_line_error(code, err, "wrong-shape", "bad_decode.py", "float32 (3, 3)",
                          "expected uint8 (28, 28)")  # fmt: skip
    kept = pd.read_parquet(out / "results.parquet")
    assert set(kept["method"]) == {"gzip"} and len(kept) == 12  # the finished rows are kept
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_a_codec_that_raises_is_one_line_naming_it(monkeypatch, capsys, bad, binarized_mnist_dir):
    code, _, err = _codecs(monkeypatch, capsys, binarized_mnist_dir.parent, bad / "run", "-c",
                           "divides", "--workers", "2", "--plugin",
                           str(bad / "raising_codec.py"))  # fmt: skip
    assert_one_line_error(code, err, "divides", "raising_codec.py", "ZeroDivisionError")


def test_a_metric_may_not_write_anothers_column(monkeypatch, capsys, bad, binarized_mnist_dir):
    """A metric writing ``psnr`` (the built-in's) or ``bpp`` (the table's) would replace a
    number: refused before any work."""
    for metric, column in (("my-psnr", "'psnr', which metric 'psnr'"),
                           ("my-bpp", "'bpp', which the table")):  # fmt: skip
        code, _, err = run_cli(monkeypatch, capsys, "codecs", "--dataset", "kodak", "-c", "png",
                               "--metrics", metric, "--out", str(bad / metric), "--plugin",
                               str(bad / "psnr_again.py"))  # fmt: skip
        assert_one_line_error(code, err, f"metric '{metric}'", "psnr_again.py", column)
        assert not (bad / metric).exists()


def test_a_model_config_must_be_a_config_dataclass(monkeypatch, capsys, bad):
    code, _, err = run_cli(monkeypatch, capsys, "models", "--plugin", str(bad / "plain_config.py"))
    assert_one_line_error(code, err, "plain_config.py", "plain-config", "config_dataclass")


def test_a_metric_that_raises(monkeypatch, capsys, bad, binarized_mnist_dir):
    code, _, err = _codecs(monkeypatch, capsys, binarized_mnist_dir.parent, bad / "run", "-c",
                           "gzip", "--metrics", "raises", "--workers", "2", "--plugin",
                           str(bad / "raising_metric.py"))  # fmt: skip
    assert_one_line_error(code, err, "metric 'raises'", "raising_metric.py", "ValueError",
                          "this metric is broken")  # fmt: skip


@pytest.mark.parametrize(("nan", "fragment"), [
    ("false", "forward's rate must be per example, shape (8,), got ()"),
    ("true", "forward's distortion is not finite (NaN or inf) for 8 of 8 examples"),
])  # fmt: skip
def test_a_model_whose_forward_is_wrong(nan, fragment, monkeypatch, capsys, bad,
                                        binarized_mnist_dir):  # fmt: skip
    code, _, err = run_cli(monkeypatch, capsys, "train", "bad-model", "--dataset",
                           "binarized-mnist", "--data-dir", str(binarized_mnist_dir.parent),
                           "--steps", "2", "--set", "batch_size=8", "--set", f"nan={nan}",
                           "--set", "progress=false", "--out", str(bad / "train"),
                           "--plugin", str(bad / "bad_model.py"))  # fmt: skip
    assert_one_line_error(code, err, "model 'bad-model'", "bad_model.py", fragment)


def test_one_package_may_register_several_entries_of_one_module(tmp_path):
    """An installed package whose module decorates its classes and lists them as entry points
    too: its entries are one plugin's, not rivals for their own names."""
    site = tmp_path / "site"
    info = site / "twin_codecs-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: twin-codecs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[vlae_bench.methods]\naa = twin_mod:Aa\nbb = twin_mod:Bb\n"
    )
    (site / "twin_mod.py").write_text(textwrap.dedent('''
        from baselines.classical import Gzip
        from benchmarks import register_method

        @register_method("aa")
        class Aa(Gzip):
            pass

        @register_method("bb")
        class Bb(Gzip):
            pass
    '''))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.cli", "codecs", "--list"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plugin twin-codecs 1.0" in done.stdout
    assert {line.split()[0] for line in done.stdout.splitlines() if line} >= {"aa", "bb"}


def test_a_class_registered_in_a_function_reaches_the_workers(tmp_path, binarized_mnist_dir):
    """Importing the script again would not register a class defined inside a function: it
    goes to the workers pickled."""
    script = _write(tmp_path, "local.py", """
        import sys
        from pathlib import Path


        def main():
            import zlib

            import numpy as np

            from benchmarks import Codec, ParamSpec, evaluate_to, register_method

            @register_method("local-zlib")
            class LocalZlib(Codec):
                param = ParamSpec("level", 0, 9, 6)
                lossless = True

                def encode(self, image):
                    return zlib.compress(image.tobytes(), int(self.value))

                def decode(self, data):
                    return np.frombuffer(zlib.decompress(data), np.uint8).reshape(28, 28)

            store = evaluate_to(Path(sys.argv[1]), "binarized-mnist", ["local-zlib"], limit=8,
                                workers=2, progress=False, echo=lambda _: None)
            print("ROWS", len(store.frame()))


        if __name__ == "__main__":
            main()
    """)  # fmt: skip
    env = {**os.environ, "VLAE_BENCH_DATA": str(binarized_mnist_dir.parent)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS 8" in done.stdout


def test_registered_classes_are_checked_when_they_register():
    from benchmarks import Metric, PluginError, register_metric

    class NoDirection(Metric):
        columns = {"score": "bigger"}

        def score(self, original, reconstruction):
            return {"score": 0.0}

    with pytest.raises(PluginError, match="'higher' or 'lower'"):
        register_metric("no-direction")(NoDirection)
    from benchmarks.metrics import METRICS

    assert "no-direction" not in METRICS
