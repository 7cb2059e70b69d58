"""The training framework end to end on the embedded real data: procedures, resume after a kill, two processes."""

import csv
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import isvs_triton as isvs
from isvs_triton.config import PRESETS
from isvs_triton.data import Images, load_data
from isvs_triton.samples import crops
from isvs_triton.train import evaluate, load_run, main, parse_args, train
from isvs_triton.train.config import BASELINES, TrainConfig, save_yaml
from isvs_triton.train.loop import KILL_ENV, _check_resumed_settings
from isvs_triton.train.run_folder import RunInfo, SmoothingSpec
from isvs_triton.train.smoother import Smoother, smooth_dataset

TINY = ["--model", "resnet8", "--limit-train", "128", "--limit-test", "64", "-b", "32", "--lr", "0.05",
        "--no-progress", "--log-with", "none"]  # fmt: skip


def _rows(run):
    with open(run / "summary.csv") as f:
        return list(csv.DictReader(f))


def _train(tmp_path, *flags, name="run"):
    return train(parse_args([*TINY, "--output", str(tmp_path / name), *flags]))


def _command(*flags):
    return [sys.executable, "-m", "isvs_triton.train", *TINY, *flags]


# bit-exact comparisons between runs hold on the CPU; GPU kernels (cuDNN, float atomics) are not deterministic, so
# the runs that are compared bit for bit hide any GPU (the suite also runs on GPU machines)
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.parametrize(
    "procedure, flags, sparsities",
    [
        ("standard", ["--epochs", "2"], ["", ""]),
        ("fixed", ["--epochs", "2", "--sparsity", "0.5"], ["0.5", "0.5"]),
        ("fixed", ["--epochs", "1", "--cache-smoothed"], [""]),  # smoothed before the loop
        ("iterative", ["--epochs", "3", "--schedule", "0.2,0.5"], ["0.2", "0.2", "0.5"]),
        ("finetune", ["--epochs", "1", "--finetune-epochs", "1", "--sparsity", "0.4"], ["", "0.4"]),
        *[(baseline, ["--epochs", "1"], [""]) for baseline in BASELINES],
    ],
    ids=["standard", "fixed", "fixed-cached", "iterative", "finetune", *BASELINES],
)
def test_procedure_end_to_end(tmp_path, procedure, flags, sparsities):
    run = _train(tmp_path, "--procedure", procedure, *flags)
    rows = _rows(run)
    assert [r["sparsity"] for r in rows] == sparsities
    transformed = [bool(s) or procedure in BASELINES for s in sparsities]
    assert [float(r["smoothing_seconds"]) > 0 for r in rows] == transformed
    assert (run / "args.yaml").exists() and not list((run / "checkpoints").glob("incomplete*"))
    # the saved weights reproduce the last reported test accuracy
    model, info = load_run(run)
    assert info.model == "resnet8" and info.procedure == procedure
    from accelerate import Accelerator

    data = load_data(limit_train=128, limit_test=64)
    loader = torch.utils.data.DataLoader(Images(data.test, 32), batch_size=32)
    assert evaluate(model, loader, Accelerator())["acc"] == pytest.approx(float(rows[-1]["test_acc"]), abs=1e-6)


@pytest.mark.slow
def test_mixed_precision_with_gradient_accumulation(tmp_path):
    # its own process: Accelerate keeps one mixed-precision setting per process
    run = tmp_path / "bf16"
    flags = ["--procedure", "fixed", "--epochs", "2", "--amp-dtype", "bf16", "--grad-accum", "2", "--output", str(run)]
    result = subprocess.run(_command(*flags), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _rows(run)
    assert len(rows) == 2 and all(math.isfinite(float(r["train_loss"])) for r in rows)
    assert load_run(run)[1].config["amp_dtype"] == "bf16"


def test_channels_last_trains_saves_and_resumes_like_nchw(tmp_path):
    """--channels-last: the run is saved (safetensors takes the weights), follows the NCHW run to float rounding (the
    same data order and augmentation), and resumes from its epoch-1 checkpoint to the same weights."""
    # one epoch: rounding differences are still ~1e-7 (they grow to ~1e-4 in the second, at this lr on 128 images)
    nchw, nhwc = _train(tmp_path, "--epochs", "1", name="nchw"), _train(tmp_path, "--epochs", "1", "--channels-last")
    assert load_run(nhwc)[1].config["channels_last"] is True
    expected, got = load_file(nchw / "model.safetensors"), load_file(nhwc / "model.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=name)
    flags = ["--epochs", "2", "--channels-last"]
    got = load_file(_train(tmp_path, *flags, name="whole") / "model.safetensors")
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    for done in ("model.safetensors", "run.json"):
        (tmp_path / "resumed" / done).unlink()
    shutil.rmtree(sorted((tmp_path / "resumed" / "checkpoints").iterdir())[-1])  # back to the end of epoch 1
    resumed = load_file(_train(tmp_path, *flags, "--resume", name="resumed") / "model.safetensors")
    for name in got:
        torch.testing.assert_close(resumed[name], got[name], rtol=0, atol=1e-6, msg=name)


def test_cached_smoothing_equals_on_the_fly():
    config = parse_args([*TINY, "--procedure", "fixed", "--sparsity", "0.5", "--cache-smoothed"])
    data = load_data(limit_train=40, limit_test=8)
    cached = Images(smooth_dataset(data.train, config, 32), 32).__getitems__(list(range(40)))
    raw = Images(data.train, 32).__getitems__(list(range(40)))
    x = torch.stack([image for _, image, _ in raw]).float() / 255
    on_the_fly = Smoother(config, 40, 32)(x, 0.5)
    stored = torch.stack([image for _, image, _ in cached]).float() / 255
    assert (stored - on_the_fly).abs().max() <= 0.5 / 255 + 1e-6  # stored as uint8
    assert (stored - x).abs().max() > 0.05, "the cached images are smoothed"


@pytest.mark.parametrize("solver", ["fast", "events"])
def test_iterative_continued_path_equals_restarted_path(solver):
    x = crops(16, 12, seed=3)
    index = torch.arange(12)
    flags = [*TINY, "--procedure", "iterative", "--solver", solver]
    keep = Smoother(parse_args([*flags, "--path-state-budget", "1GiB"]), 12, 16)
    recompute = Smoother(parse_args([*flags, "--path-state-budget", "0"]), 12, 16)
    assert keep.cache is not None and recompute.cache is None
    keep(x[6:], 0.2, index[6:])  # stage 1, in two batches of another composition than stage 2
    keep(x[:6], 0.2, index[:6])
    after_stage_1 = keep.cache.iterations.clone()
    continued = keep(x, 0.5, index)
    assert (keep.cache.iterations >= after_stage_1).all() and (keep.cache.iterations > after_stage_1).any()
    assert (after_stage_1 > 0).all()
    torch.testing.assert_close(continued, recompute(x, 0.5, index), rtol=0, atol=0)
    torch.testing.assert_close(continued, isvs.sparsify(x, 0.5, **PRESETS[solver].kwargs()), rtol=0, atol=0)
    again = keep.cache.iterations.clone()
    torch.testing.assert_close(keep(x, 0.5, index), continued, rtol=0, atol=0)  # a revisit costs no iteration
    assert torch.equal(keep.cache.iterations, again)


def test_noise_stop_reaches_training_and_the_run_record():
    """--noise auto smooths training batches with each image's noise stop (the path cache continues it too), and
    --backend accepts every backend of the registry (numba, the CPU default, was once refused)."""
    x = (crops(16, 6, seed=4) + 0.1 * torch.randn(6, 3, 16, 16)).clamp(0, 1)
    expected = isvs.sparsify(x, 0.5, noise="auto", discrepancy=1.5, **isvs.FAST.kwargs())  # training's default preset
    for budget in ("1GiB", "0"):
        config = parse_args([*TINY, "--procedure", "iterative", "--noise", "auto", "--discrepancy", "1.5",
                             "--path-state-budget", budget, "--backend", "numba"])  # fmt: skip
        assert config.noise == "auto" and config.smoothing(0.5).kwargs()["noise"] == "auto"
        torch.testing.assert_close(Smoother(config, 6, 16)(x, 0.5, torch.arange(6)), expected, rtol=0, atol=0)
    assert parse_args([*TINY, "--noise", "0.05"]).noise == 0.05


def test_every_flag_has_a_help_line_with_its_default(capsys):
    import dataclasses

    from isvs_triton.train.config import field_help

    helps = field_help()
    assert set(helps) == {f.name for f in dataclasses.fields(TrainConfig)}, "a setting without its comment"
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    compact = "".join(text.split())  # argparse wraps lines, at spaces and after hyphens
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in text
        assert "".join(helps[f.name].split()) in compact, f.name
    assert "peaklearningrate(notrescaledwiththenumberofprocesses)(default:0.1)" in compact


def test_smoothing_spec_reads_old_and_new_run_records():
    old = {"procedure": "fixed", "test_sparsity": 0.6, "schedule": [0.6], "solver": "default", "channels": "joint"}
    spec = SmoothingSpec.from_run(old)
    # "default" named FAST's constants before the events solver became the default: an old run smooths as trained
    assert spec == SmoothingSpec(0.6, "fast", "joint", "auto", None, 1.0)
    new = {**old, "solver": "events", "backend": "torch", "noise": "auto", "discrepancy": 0.8}
    assert SmoothingSpec.from_run(new).kwargs()["noise"] == "auto"
    written = SmoothingSpec.from_run(new).to_run("fixed", [0.6])
    assert written == new and SmoothingSpec.from_run(written) == SmoothingSpec.from_run(new)
    with pytest.raises(ValueError, match=r"run.json: the 'smoothing' entry lacks \['solver'\]"):
        SmoothingSpec.from_run({k: v for k, v in old.items() if k != "solver"})


def test_run_info_round_trips_and_refuses_what_it_cannot_read(tmp_path):
    info = RunInfo(
        "resnet8",
        10,
        32,
        "photo-patches",
        SmoothingSpec(0.6, "events", "independent", "auto", "auto"),
        "iterative",
        (0.2, 0.4, 0.6),
        {"seed": 3},
        [f"class {i}" for i in range(10)],
    )
    info.write(tmp_path / "run.json")
    assert RunInfo.read(tmp_path / "run.json") == info
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(info.smoothing.transform()(x), info.smoothing(x)), "the run's smoothing as a transform"
    description = info.to_json()
    assert description["smoothing"]["procedure"] == "iterative" and description["smoothing"]["solver"] == "events"
    old = {
        **description,
        "smoothing": {
            k: v for k, v in description["smoothing"].items() if k not in ("backend", "noise", "discrepancy")
        },
    }  # before the noise stop
    assert RunInfo.from_json(old).smoothing.noise is None
    with pytest.raises(ValueError, match=r"run.json lacks \['config'\]"):
        RunInfo.from_json({k: v for k, v in description.items() if k != "config"})
    with pytest.raises(ValueError, match="num_classes must be an integer"):
        RunInfo.from_json({**description, "num_classes": "10"})
    smoothing = description["smoothing"]
    for change, message in [
        ({"num_classes": 10**12}, r"num_classes must lie in \[1, 1,000,000\], got 1000000000000"),
        ({"num_classes": 2**70}, "num_classes must lie in"),
        ({"image_size": 0}, "image_size must lie in"),
        ({"model": "resnet7"}, "model must be one of"),
        ({"classes": ["a", "b"]}, "classes must be null or 10 names"),
        ({"smoothing": {**smoothing, "test_sparsity": "0.6"}}, "smoothing.test_sparsity must be a number in"),
        ({"smoothing": {**smoothing, "solver": "quick"}}, "smoothing.solver must be one of"),
        ({"smoothing": {**smoothing, "noise": -1}}, "smoothing.noise must be"),
        ({"smoothing": {**smoothing, "schedule": "0.2"}}, "smoothing.schedule must be a list"),
    ]:
        with pytest.raises(ValueError, match=message):
            RunInfo.from_json({**description, **change})
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ValueError, match="folder.json cannot be read as a run description"):
        RunInfo.read(tmp_path / "folder.json")
    (tmp_path / "latin1.json").write_bytes(b'{"model": "r\xe9snet"}')
    with pytest.raises(ValueError, match="latin1.json cannot be read as a run description"):
        RunInfo.read(tmp_path / "latin1.json")


@pytest.mark.slow
def test_resume_after_kill_mid_epoch_matches_uninterrupted_run(tmp_path):
    flags = ["--procedure", "iterative", "--schedule", "0.2,0.5", "--epochs", "2", "--checkpoint-every", "3"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_command(*flags, "--output", str(whole)), env=CPU_ONLY, capture_output=True, check=True)
    # 4 steps per epoch; checkpoints after steps 3, 4, 6: killed after step 7, the run resumes mid-epoch 2 at step 6
    env = {**CPU_ONLY, KILL_ENV: "7"}
    result = subprocess.run(_command(*flags, "--output", str(killed)), env=env, capture_output=True, text=True)
    assert result.returncode == -9, result.stderr[-2000:]
    assert not (killed / "model.safetensors").exists()
    assert [p.name for p in sorted((killed / "checkpoints").iterdir())] == ["step_000000004", "step_000000006"]
    resume = _command(*flags, "--output", str(killed), "--resume")
    result = subprocess.run(resume, env=CPU_ONLY, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = killed
    final, expected = load_file(resumed / "model.safetensors"), load_file(whole / "model.safetensors")
    assert final.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=0, atol=1e-6, msg=name)
    assert [r["test_acc"] for r in _rows(resumed)] == [r["test_acc"] for r in _rows(whole)]
    assert [r["train_loss"] for r in _rows(resumed)] == [r["train_loss"] for r in _rows(whole)]


@pytest.mark.slow
def test_two_cpu_processes_match_one(tmp_path):
    flags = ["--procedure", "fixed", "--epochs", "2", "--limit-train", "256"]
    one = _train(tmp_path, *flags, name="one")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "isvs_triton.train",
        *TINY,
        *flags,
        "-b",
        "16",
        "--output",
        str(tmp_path / "two"),
    ]  # 2 x 16 = the same 32 images a step
    result = subprocess.run(command, capture_output=True, text=True, env={**CPU_ONLY, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run folder:") == 1, "one process reports"
    rows_one, rows_two = _rows(one), _rows(tmp_path / "two")
    assert len(rows_two) == 2 and (tmp_path / "two" / "model.safetensors").exists()
    for a, b in zip(rows_one, rows_two):  # same images per step; batch-norm statistics over 16 instead of 32
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=0.15)
        assert float(b["test_acc"]) == pytest.approx(float(a["test_acc"]), abs=0.15)


@pytest.mark.slow
def test_embedded_real_data_is_learned(tmp_path):
    run = train(parse_args(["--model", "resnet8", "--epochs", "3", "-b", "64", "--lr", "0.05", "--no-progress",
                            "--log-with", "none", "--output", str(tmp_path / "run")]))  # fmt: skip
    rows = _rows(run)
    assert float(rows[-1]["train_loss"]) < 0.7 * float(rows[0]["train_loss"])
    assert float(rows[-1]["test_acc"]) > 0.4, "ten classes: chance is 0.1"


def test_yaml_then_flags_override_recipe_defaults(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("epochs: 7\nbatch-size: 16\nschedule: [0.1, 0.3]\nprocedure: iterative\n")
    defaults = dict(epochs=3, batch_size=8, model="resnet8", lr=0.2)
    config = parse_args(["-c", str(config_file), "--batch-size", "4"], defaults)
    assert (config.epochs, config.batch_size, config.model, config.lr, config.schedule) == (
        7,
        4,
        "resnet8",
        0.2,
        [0.1, 0.3],
    )
    assert parse_args(["--schedule", "0.3,0.6", "--procedure", "iterative"]).sparsity_at(9) == 0.6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "resnet7"], "accepted: ['resnet18'"),
        (["--procedure", "curriculum"], "accepted: ['standard', 'fixed', 'iterative', 'finetune', 'augment', 'blur'"),
        (["--procedure", "iterative", "--schedule", "0.6,0.4"], "--schedule must rise"),
        (["--procedure", "iterative", "--epochs", "2"], "at least the number of stages"),
        (["--procedure", "iterative", "--backend", "reference"], "cannot continue a path"),
        (["--procedure", "standard", "--cache-smoothed"], "--cache-smoothed does not apply to --procedure standard"),
        (["--procedure", "standard", "--finetune-epochs", "2"], "--finetune-epochs does not apply"),
        (["--procedure", "iterative", "--sparsity", "0.3"], "which reads ['--schedule', '--path-state-budget']"),
        (["--procedure", "fixed", "--noise-sigma", "0.3"], "--noise-sigma does not apply to --procedure fixed"),
        (["--lr", "1e308"], "--lr must lie in (0, 1000], got 1e+308"),
        (["--output", ""], "--output must name a folder, got ''"),
        (["--blur-sigma", "1e9", "--procedure", "blur"], "--blur-sigma must lie in (0, 100]"),
        (["--sparsity", "1.5"], "--sparsity must lie in (0, 1], got 1.5"),
        (["--procedure", "iterative", "--epochs", "3", "--path-state-budget", "lots"], "a size like 512MiB"),
        (["--image-column", "pixels"], "image column 'pixels' not in the dataset; its columns: ['image', 'label']"),
        (["--test-split", "dev"], "split 'dev' not in the dataset; its splits: ['train', 'test']"),
        (["--dataset", "uoft-cs/cifar10"], "--data-dir DIR"),
        (["--data-dir", "/nonexistent/cifar"], "does not exist"),
        (["--limit-train", "16"], "no full batch"),
        (["--noise", "loud"], "--noise must be 'auto' or a number >= 0, got 'loud'"),
        (["--noise", "-0.1"], "--noise must be 'auto' or a number >= 0, got -0.1"),
        (["--discrepancy", "0"], "--discrepancy must lie in (0, 100], got 0.0"),
        (["--backend", "fpga"], "accepted: ['auto', 'reference', 'torch'"),
    ],
)
def test_bad_settings_end_with_one_clear_line(tmp_path, capsys, monkeypatch, argv, message):
    import datasets
    import huggingface_hub

    # fail at once instead of retrying a Hub that cannot be reached (both libraries read the variable at import)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exit_info:
        main(argv=[*TINY, "--output", str(tmp_path / "run"), *argv])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and "Traceback" not in error


def test_refuses_to_overwrite_a_run_and_rejects_unknown_yaml_keys(tmp_path, capsys):
    _train(tmp_path, "--epochs", "1")
    with pytest.raises(SystemExit):
        main(argv=[*TINY, "--epochs", "1", "--output", str(tmp_path / "run")])
    assert "pass --resume" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(SystemExit):
        main(argv=["-c", str(bad)])
    assert "unknown settings ['epoch']" in capsys.readouterr().err


def test_local_copies_load_like_the_original(tmp_path):
    original = load_data(limit_train=30, limit_test=10)
    from datasets import DatasetDict

    splits = DatasetDict(train=original.train, test=original.test)
    splits.save_to_disk(str(tmp_path / "disk"))
    (tmp_path / "parquet").mkdir()
    for name, split in splits.items():
        split.to_parquet(str(tmp_path / "parquet" / f"{name}-00000.parquet"))
    for name, split in splits.items():  # imagefolder: split / class / file
        for i, row in enumerate(split):
            folder = tmp_path / "folder" / name / split.features["label"].names[row["label"]]
            folder.mkdir(parents=True, exist_ok=True)
            row["image"].save(folder / f"{i}.png")
    for kind in ("disk", "parquet", "folder"):
        data = load_data("my-copy", data_dir=str(tmp_path / kind))
        assert (len(data.train), len(data.test), data.image_size) == (30, 10, 32), kind
        images = sorted(Images(data.train, 32)[i][1].sum().item() for i in range(30))
        assert images == sorted(Images(original.train, 32)[i][1].sum().item() for i in range(30)), kind
        assert data.num_classes == (10 if kind != "folder" else len({r for r in original.train["label"]})), kind


def test_resume_refuses_changed_settings_and_reads_old_solver_names(tmp_path):
    save_yaml(TrainConfig(solver="fast", lr=0.05), tmp_path / "args.yaml")
    _check_resumed_settings(TrainConfig(solver="fast", lr=0.05, workers=3), tmp_path)  # workers may change
    with pytest.raises(ValueError, match=r"lr \(run: 0.05, now: 0.1\)"):
        _check_resumed_settings(TrainConfig(solver="fast"), tmp_path)
    # a run begun before the events solver became the default saved solver "default", meaning FAST's constants
    text = (tmp_path / "args.yaml").read_text()
    (tmp_path / "args.yaml").write_text(text.replace("solver: fast", "solver: default"))
    _check_resumed_settings(TrainConfig(solver="fast", lr=0.05), tmp_path)
    with pytest.raises(ValueError, match=r"solver \(run: 'fast', now: 'events'\)"):
        _check_resumed_settings(TrainConfig(lr=0.05, solver="events"), tmp_path)


def test_a_recipes_own_procedure_settings_do_not_follow_the_user_to_another_procedure():
    recipe = {"procedure": "iterative", "schedule": [0.1, 0.2, 0.3], "model": "resnet8"}
    assert parse_args(["--procedure", "fixed"], recipe).schedule == TrainConfig().schedule
    with pytest.raises(ValueError, match="--schedule does not apply to --procedure fixed"):
        parse_args(["--procedure", "fixed", "--schedule", "0.2,0.5"], recipe)


def test_training_smooths_with_the_fast_preset_and_sparsify_keeps_the_faithful_default():
    """Training's default is the cheapest preset that trains as robust models (FAST); sparsify's is EVENTS."""
    from isvs_triton.config import DEFAULT, PRESETS, TRAINING_PRESET

    assert TrainConfig().solver == TRAINING_PRESET == "fast" and PRESETS["fast"] is isvs.FAST
    assert TrainConfig(procedure="fixed").smoothing(0.4).kwargs()["integrator"] == "explicit"
    assert DEFAULT is isvs.EVENTS and SmoothingSpec(0.4).solver == "events"
