"""Specs: validated on load (errors name the key and its line), expanded into jobs with
stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks
from benchmarks.errors import BenchError
from benchmarks.runs.spec import expand, load_spec

SHIPPED = Path(benchmarks.__file__).parent / "specs" / "vlae_mnist.toml"
GRID = """
[spec]
name = "grid"
[data]
datasets = ["binarized-mnist"]
[train]
steps = 100
lr = 0.001
[profiles.smoke]
train = { steps = 5 }
[[arms]]
name = "bvae"
model = "beta-vae"
set = { width = 16 }
seeds = [0, 1]
grid = { beta = [0.5, 1.0], latent_dim = [8, 16] }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_the_shipped_spec_expands_to_its_arms_seeds_and_datasets():
    spec = load_spec(SHIPPED)
    jobs = expand(spec)
    expected = sum(len(a.seeds) for a in spec.arms) * len(spec.data.datasets)
    assert len(jobs) == expected and len({j.job_id for j in jobs}) == expected
    assert {j.folder.split("/")[0] for j in jobs} == set(spec.data.datasets)  # one per dataset
    cpu = expand(spec, "cpu")  # one dataset: folders ARM-sSEED
    large = next(j for j in cpu if j.folder == "vlae-large-window-s1")
    # the spec's train, then the profile's, then the profile's budget for the arm; the seed
    profile = spec.profiles["cpu"]
    assert large.train_config == {**spec.train, **profile.train, "steps": 1400, "seed": 1}
    assert large.passes["iwae"]["limit"] == 200 and large.passes["iwae"]["iw_samples"] == 1000
    assert large.passes["elbo"] == {
        "kind": "likelihood", "dataset": "binarized-mnist", "split": "test", "limit": None,
        "iw_samples": 0, "batch_size": 256, "rate_kinds": None, "metrics": None,
    }  # fmt: skip
    assert large.train_split == "train" and large.model_config["pixelcnn_kernel"] == 7
    # ids are a function of the resolved config: stable across loads, changed by the budget
    assert [j.job_id for j in expand(load_spec(SHIPPED), "cpu")] == [j.job_id for j in cpu]
    smoke = {j.folder: j.job_id for j in expand(spec, "smoke")}
    assert smoke["vlae-large-window-s1"] != large.job_id


def test_a_grid_is_every_combination_split_between_model_and_training(tmp_path):
    jobs = expand(load_spec(_write(tmp_path, GRID)), "smoke")
    assert len(jobs) == 2 * 2 * 2  # beta x latent_dim x seeds
    job = next(j for j in jobs if j.folder == "bvae-beta0.5-latent_dim16-s1")
    assert job.train_config == {"steps": 5, "lr": 0.001, "beta": 0.5, "seed": 1}
    assert job.model_config == {"width": 16, "latent_dim": 16}
    # logging cadence does not change a number, so it does not change the id
    quiet = GRID.replace("steps = 5 }", "steps = 5, log_every = 7 }")
    again = expand(load_spec(_write(tmp_path, quiet)), "smoke")
    assert [j.job_id for j in again] == [j.job_id for j in jobs]


def test_codec_arms_and_weights_arms_do_not_train(tmp_path):
    text = (
        GRID
        + """
[[arms]]
name = "jpeg"
codec = "jpeg"
quality = "10,50"
[[arms]]
name = "zoo-bvae"
model = "beta-vae"
weights = "zoo:beta-vae-photos-{beta}"
grid = { beta = [0.3, 1] }
[eval.passes.codec]
kind = "codec"
dataset = "kodak"
"""
    )
    jobs = {j.folder: j for j in expand(load_spec(_write(tmp_path, text)))}
    jpeg = jobs["jpeg"]
    assert jpeg.codec == "jpeg" and not jpeg.trains and list(jpeg.passes) == ["codec"]
    assert jobs["zoo-bvae-beta0.3"].weights == "zoo:beta-vae-photos-0.3"
    assert not jobs["zoo-bvae-beta1"].trains and jobs["zoo-bvae-beta1"].seed is None
    assert jobs["bvae-beta0.5-latent_dim8-s0"].passes["codec"]["dataset"] == "kodak"
    assert list(jobs["bvae-beta0.5-latent_dim8-s0"].passes) == ["codec"]  # passes given: no default


@pytest.mark.parametrize(
    ("edit", "line_with", "fragment"),
    [
        (lambda s: s + "[extra]\nx = 1\n", "[extra]", "extra: Extra inputs are not permitted"),
        (lambda s: s.replace("seeds = [0, 1]", 'seeds = "zero"'), "seeds =", "arms.0.seeds"),
        (
            lambda s: s.replace("lr = 0.001", "lr = 0.001\nlearning_rate = 1"),
            "learning_rate",
            "train.learning_rate: not a field of TrainConfig",
        ),
        (
            lambda s: s.replace("width = 16", "widht = 16"),
            "widht",
            "arms.0.set.widht: not a field of BetaVAEConfig",
        ),
        (
            lambda s: s.replace("latent_dim = [8, 16]", "latent = [8, 16]"),
            "latent =",
            "arms.0.grid.latent: not a field of BetaVAEConfig or TrainConfig",
        ),
        (
            lambda s: s.replace("beta = [0.5, 1.0]", "beta = []"),
            "beta = []",
            "arms.0.grid.beta: the grid has no values",
        ),
        (
            lambda s: s.replace('model = "beta-vae"', 'model = "beta-vea"'),
            "beta-vea",
            "arms.0.model: unknown model 'beta-vea'",
        ),
        (
            lambda s: s + "[profiles.smoke.arms.bvea]\ntrain = { steps = 2 }\n",
            "[profiles.smoke.arms.bvea]",
            "profiles.smoke.arms.bvea: no arm 'bvea'; arms: ['bvae']",
        ),
        (
            lambda s: s + "[profiles.smoke.arms.bvae]\ntrain = { stesp = 2 }\n",
            "stesp",
            "profiles.smoke.arms.bvae.train.stesp: not a field of TrainConfig",
        ),
        (
            lambda s: s.replace("seeds = [0, 1]", "seeds = [0, 1]\neval = { iwae = { k = 5 } }"),
            "eval = {",
            "arms.0.eval.iwae: no evaluation pass 'iwae'; passes: ['elbo']",
        ),
        (
            lambda s: s.replace("[[arms]]", '[[arms]]\nname = "x"\ncodec = "jpg"\n[[arms]]'),
            'codec = "jpg"',
            "arms.0.codec: unknown method 'jpg'",
        ),
        # values are checked on load too, before any job trains
        (
            lambda s: s.replace("lr = 0.001", 'lr = "fast"'),
            'lr = "fast"',
            "train.lr: Input should be a valid number, got 'fast'",
        ),
        (
            lambda s: s.replace("lr = 0.001", "lr = nan"),
            "lr = nan",
            "train.lr: Input should be a finite number, got nan",
        ),
        (
            lambda s: s.replace("steps = 100", 'steps = "many"'),
            'steps = "many"',
            "train.steps: Input should be a valid integer, got 'many'",
        ),
        (
            lambda s: s.replace("steps = 100", "steps = -5"),
            "steps = -5",
            "train.steps: Input should be greater than or equal to 1, got -5",
        ),
        (
            lambda s: s.replace("width = 16", 'latent_dim = "big"'),
            'latent_dim = "big"',
            "arms.0.set.latent_dim: Input should be a valid integer, got 'big'",
        ),
        (
            lambda s: s.replace("beta = [0.5, 1.0]", 'beta = ["a", 1]'),
            'beta = ["a", 1]',
            "arms.0.grid.beta: Input should be a valid number, got 'a'",
        ),
        (
            lambda s: s.replace("beta = [0.5, 1.0]", "beta = [-1, 1]"),
            "beta = [-1, 1]",
            "arms.0.grid.beta: Input should be greater than or equal to 0, got -1",
        ),
        (
            lambda s: s.replace("beta = [0.5, 1.0]", "beta = [1, 1]"),
            "beta = [1, 1]",
            "arms.0.grid.beta: 1 is given twice (each grid value is one job)",
        ),
        (
            lambda s: s + '[[arms]]\nname = "bvae"  # again\ncodec = "png"\n',
            "# again",
            "arms.1.name: arm 'bvae' is given twice (first on line 12)",
        ),
        (
            lambda s: s + '[[arms]]\nname = "j"\ncodec = "jpeg"\nquality = "50,500"\n',
            'quality = "50,500"',
            "arms.1.quality: quality 500 out of range for 'jpeg' (allowed 0..100)",
        ),
        (
            lambda s: s.replace("set = { width = 16 }", 'weights = "zoo:x-{lmbda}"'),
            "weights =",
            "arms.0.weights: {lmbda} is not a key of the arm's grid",
        ),
        (
            lambda s: s + '[eval.passes.codec]\nkind = "codec"\nmetrics = ["lpips-typo"]\n',
            "metrics =",
            "eval.passes.codec.metrics: unknown metric 'lpips-typo'",
        ),
        (lambda s: 'plugins = ["missing.py"]\n' + s, "plugins =", "plugins.0: plugin "),
    ],
)
def test_a_bad_spec_names_the_key_and_its_line(tmp_path, edit, line_with, fragment):
    text = edit(GRID)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if line_with in row)
    with pytest.raises(BenchError) as caught:
        load_spec(_write(tmp_path, text))
    message = str(caught.value)
    assert f"spec.toml:{line}: {fragment}" in message and "\n" not in message, message


def test_two_arms_that_are_one_job_are_refused_naming_both(tmp_path):
    """Jobs are unique by id: the same job under two arms would run twice and count twice."""
    twins = GRID + '[[arms]]\nname = "png"\ncodec = "png"\n[[arms]]\nname = "png2"\ncodec = "png"\n'
    with pytest.raises(BenchError) as caught:
        expand(load_spec(_write(tmp_path, twins)))
    line = next(i for i, row in enumerate(twins.splitlines(), 1) if row == 'name = "png2"') - 1
    assert f"spec.toml:{line}: arms.2: arm 'png2' gives the same job as arm 'png'" in str(
        caught.value
    )


def test_a_training_config_that_only_the_whole_refuses_is_refused_on_expand(tmp_path):
    """``epochs`` in the spec and ``steps`` in a profile: each key is fine alone, the job's
    config is not (set exactly one of steps and epochs)."""
    text = GRID.replace("steps = 100", "epochs = 1.0")
    with pytest.raises(BenchError, match="arm 'bvae' with profile 'smoke': .*exactly one of"):
        expand(load_spec(_write(tmp_path, text)), "smoke")


def test_a_spec_that_is_not_toml_is_one_line(tmp_path):
    with pytest.raises(BenchError, match="is not valid TOML"):
        load_spec(_write(tmp_path, GRID.replace("[spec]", "[spec")))


def test_an_unknown_profile_or_arm_is_refused(tmp_path):
    spec = load_spec(_write(tmp_path, GRID))
    with pytest.raises(BenchError, match="no profile 'paper'; profiles: \\['smoke'\\]"):
        expand(spec, "paper")
    with pytest.raises(BenchError, match="no arm 'vlae'"):
        expand(spec, only=["vlae"])
