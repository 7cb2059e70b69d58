"""Hostile but realistic use of the training and evaluation CLIs: every bad input and every damaged run folder ends
in one clear ``error:`` line (exit status 2) or a defined result, and nothing the user owns is written or lost.

One test per finding of the reliability review (the API's own rows live in tests/test_api.py and
tests/test_train.py: autograd inputs, max_iter, value ranges, --backend numba, ISVS_BACKEND="")."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from isvs_triton.train import main
from tools import evaluate as evaluate_tool

QUICK = ["--model", "resnet8", "-b", "8", "--epochs", "1", "--lr", "0.05", "--no-progress", "--log-with", "none"]
NAMES = [f"class{i}" for i in range(10)]


def make_dataset(folder: Path, size: int = 8, train: int = 24, test: int = 8, names=NAMES, bad_row=None) -> Path:
    """A save_to_disk DatasetDict of random images (``bad_row``: (split, row) whose bytes are not an image)."""
    import io

    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    features = Features({"image": Image(), "label": ClassLabel(names=list(names))})
    splits = {}
    for split, count in (("train", train), ("test", test)):
        images = []
        for row in range(count):
            buffer = io.BytesIO()
            PILImage.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
            data = b"not an image at all" if bad_row == (split, row) else buffer.getvalue()
            images.append({"bytes": data, "path": None})
        labels = [row % len(names) for row in range(count)]
        splits[split] = Dataset.from_dict({"image": images, "label": labels}, features=features)
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def cli_error(capsys, argv, entry=main) -> str:
    """The one error line of a CLI call that must fail with exit status 2."""
    capsys.readouterr()  # what the test printed before (datasets' progress bars)
    with pytest.raises(SystemExit) as exit_info:
        entry(argv=argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_infinite_learning_rate_is_refused(tmp_path, capsys):
    assert "--lr must be a finite number, got inf" in cli_error(capsys, [*QUICK, "--lr", "inf"])


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ('lr: "0.1"', "--lr must be a finite number, got '0.1' (str)"),
        ("epochs: 1.5", "--epochs must be an integer, got 1.5 (float)"),
        ("schedule: 0.5", "--schedule must be a list of finite numbers, got 0.5"),
        ('progress: "no"', "--progress must be true or false, got 'no' (str)"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_refused_before_any_data_is_loaded(tmp_path, capsys, yaml_text, message):
    config = tmp_path / "settings.yaml"
    config.write_text(yaml_text + "\n")
    # a dataset that cannot be loaded here: the type error must come first
    err = cli_error(capsys, ["-c", str(config), "--dataset", "uoft-cs/cifar10", "--output", str(tmp_path / "r")])
    assert message in err


@pytest.mark.parametrize("split,row", [("test", 5), ("train", 17)])
def test_an_image_that_cannot_be_decoded_is_named_by_split_and_row(tmp_path, capsys, split, row):
    data = make_dataset(tmp_path / "data", bad_row=(split, row))
    run = tmp_path / "run"
    err = cli_error(capsys, [*QUICK, "--data-dir", str(data), "--output", str(run)])
    assert f"{split} split, row {row}: cannot decode the image" in err
    if split == "test":  # checked before training: no epoch was spent, no checkpoint written
        assert not (run / "checkpoints").exists()


def test_parquet_without_hugging_face_metadata_trains(tmp_path):
    """An image column stored as the plain struct {bytes, path} (pyarrow, no datasets metadata) is decoded."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    folder = tmp_path / "parquet"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, count in (("train", 24), ("test", 8)):
        cells = []
        for _ in range(count):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
            cells.append({"bytes": buffer.getvalue(), "path": None})
        table = pa.table({"image": cells, "label": [i % 3 for i in range(count)]})
        pq.write_table(table, folder / f"{split}-00000.parquet")
    main(argv=[*QUICK, "--data-dir", str(folder), "--output", str(tmp_path / "run")])
    assert json.loads((tmp_path / "run" / "run.json").read_text())["num_classes"] == 3


@pytest.mark.parametrize("size", [8, 40])
def test_a_local_copy_without_a_dataset_name_uses_its_own_image_size_and_name(tmp_path, size):
    data = make_dataset(tmp_path / "data", size=size)
    main(argv=[*QUICK, "--data-dir", str(data), "--output", str(tmp_path / "run")])
    description = json.loads((tmp_path / "run" / "run.json").read_text())
    assert description["image_size"] == size and description["dataset"] == str(data)


def test_output_that_is_a_file_or_lies_under_one_is_refused_before_loading(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    for output, message in ((a_file, "is a file; a run needs a folder"), (a_file / "run", "which is a file")):
        err = cli_error(capsys, [*QUICK, "--dataset", "uoft-cs/cifar10", "--output", str(output)])
        assert message in err
    assert a_file.read_text() == "mine"


def test_output_on_a_read_only_filesystem_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    """As root a chmod does not stop writes; a read-only mount does, and os.access reports it: simulated here."""
    import os

    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode)
    )
    err = cli_error(capsys, [*QUICK, "--dataset", "uoft-cs/cifar10", "--output", str(tmp_path / "runs" / "a")])
    assert f"{str(tmp_path)!r} is not writable" in err


def test_a_limited_local_copy_is_never_written_to(tmp_path):
    data = make_dataset(tmp_path / "data", train=40)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    main(argv=[*QUICK, "--data-dir", str(data), "--limit-train", "16", "--limit-test", "4",
               "--output", str(tmp_path / "run")])  # fmt: skip
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A finished 2-epoch run on the embedded data (checkpoints after each epoch) and a copy of its final weights."""
    root = tmp_path_factory.mktemp("resume")
    argv = [*QUICK, "--epochs", "2", "--limit-train", "32", "--limit-test", "8", "--output", str(root / "run")]
    main(argv=argv)
    return root / "run", load_file(root / "run" / "model.safetensors"), argv


def _unfinished_copy(run: Path, where: Path) -> Path:
    """The run as if killed after its last checkpoint: no model.safetensors or run.json yet."""
    copy = where / "copy"
    shutil.copytree(run, copy)
    (copy / "model.safetensors").unlink()
    (copy / "run.json").unlink()
    return copy


DAMAGES = {
    "model-truncated": lambda folder: _truncate(folder / "model.safetensors", 100),  # as by a full disk
    "model-deleted": lambda folder: (folder / "model.safetensors").unlink(),
    "optimizer-truncated": lambda folder: _truncate(folder / "optimizer.bin", 10),
    "rng-state-truncated": lambda folder: _truncate(next(folder.glob("random_states_*.pkl")), 5),
    "progress-truncated": lambda folder: _truncate(next(folder.glob("custom_checkpoint_*.pkl")), 5),
}


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_latest_checkpoint_gives_way_to_the_previous_one(two_epoch_run, tmp_path, capsys, damage):
    run, expected, argv = two_epoch_run
    copy = _unfinished_copy(run, tmp_path)
    latest = sorted((copy / "checkpoints").iterdir())[-1]
    DAMAGES[damage](latest)
    main(argv=[*argv[:-1], str(copy), "--resume"])
    out = capsys.readouterr().out
    assert f"checkpoint {latest} cannot be loaded, trying the one before" in out
    final = load_file(copy / "model.safetensors")  # epoch 2 trained again from epoch 1's checkpoint: the same weights
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=0, atol=0, msg=name)


def test_no_loadable_checkpoint_is_one_error_naming_them(two_epoch_run, tmp_path, capsys):
    run, _, argv = two_epoch_run
    copy = _unfinished_copy(run, tmp_path)
    for checkpoint in (copy / "checkpoints").iterdir():
        (checkpoint / "optimizer.bin").write_bytes(b"")
    err = cli_error(capsys, [*argv[:-1], str(copy), "--resume"])
    assert "no checkpoint could be loaded" in err and "step_" in err and "Delete the damaged folders" in err


@pytest.mark.parametrize(
    "change,message",
    [(["-b", "4"], "batch_size (run: 8, now: 4)"), (["--epochs", "1"], "epochs (run: 2, now: 1)")],
)
def test_resume_with_other_settings_is_refused_and_keeps_the_runs_record(
    two_epoch_run, tmp_path, capsys, change, message
):
    run, _, argv = two_epoch_run
    copy = _unfinished_copy(run, tmp_path)
    recorded = (copy / "args.yaml").read_text()
    err = cli_error(capsys, [*argv[:-1], str(copy), "--resume", *change])
    assert message in err and "only ['resume', 'output'" in err
    assert (copy / "args.yaml").read_text() == recorded
    main(argv=[*argv[:-1], str(copy), "--resume", "--no-progress", "--keep-checkpoints", "3"])  # harmless changes


def evaluation_error(capsys, argv) -> str:
    return cli_error(capsys, [*argv, "--severities", "1", "--corruptions", "gaussian_noise", "--epsilons", "2",
                              "--pgd-steps", "1", "--no-progress"], entry=evaluate_tool.main)  # fmt: skip


def test_evaluation_refuses_an_empty_test_subset(two_epoch_run, capsys):
    run, _, _ = two_epoch_run
    assert "--limit-test must be an integer >= 1, got 0" in evaluation_error(capsys, [str(run), "--limit-test", "0"])


def test_evaluation_compares_class_names_not_only_their_count(two_epoch_run, tmp_path, capsys):
    run, _, _ = two_epoch_run
    other = make_dataset(tmp_path / "other", size=32, names=[f"garment{i}" for i in range(10)])
    err = evaluation_error(capsys, [str(run), "--dataset", "other", "--data-dir", str(other)])
    assert "are not the model's" in err and "garment0" in err


def test_a_damaged_run_folder_is_one_clear_error(two_epoch_run, tmp_path, capsys):
    run, _, _ = two_epoch_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    description = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**description, "num_classes": 7, "classes": None}))
    assert "does not fit run.json (resnet8, 7 classes" in evaluation_error(capsys, [str(copy)])
    (copy / "run.json").write_text(json.dumps(description))
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    assert "model.safetensors cannot be read" in evaluation_error(capsys, [str(copy)])
    (copy / "run.json").write_text("{")
    assert "run.json is not valid JSON" in evaluation_error(capsys, [str(copy)])


def test_a_folder_without_data_files_is_named_so(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("my notes\n")
    err = cli_error(capsys, [*QUICK, "--data-dir", str(folder), "--output", str(tmp_path / "run")])
    assert "holds no data set files (suffixes found: ['.txt'])" in err


def test_a_validation_split_is_held_out_of_training_and_the_test_split_left_unread(tmp_path):
    """--val-fraction: epochs are evaluated on held-out training images (fixed by the seed, disjoint from what the
    model trains on), summary.csv has no test column filled, and tools/evaluate.py --split validation reads the same
    held-out images back."""
    from isvs_triton.data import load_data

    data = load_data(limit_train=40, val_fraction=0.25, val_seed=3)
    again = load_data(limit_train=40, val_fraction=0.25, val_seed=3)
    full = load_data()
    assert len(data.validation) == round(0.25 * len(full.train)) and len(data.train) == 40
    assert data.validation["label"] == again.validation["label"]
    held = {bytes(image.tobytes()) for image in data.validation["image"]}
    assert not held & {bytes(image.tobytes()) for image in data.train["image"]}, "no image both trains and validates"
    run = tmp_path / "run"
    main(argv=[*QUICK, "--limit-train", "32", "--val-fraction", "0.1", "--output", str(run)])
    import csv

    rows = list(csv.DictReader((run / "summary.csv").open()))
    assert rows[0]["val_acc"] != "" and rows[0]["test_acc"] == ""
    results = evaluate_tool.main([str(run), "--split", "validation", "--severities", "1", "--corruptions",
                                  "gaussian_noise", "--epsilons", "2", "--pgd-steps", "1", "--pipelines", "plain",
                                  "--no-progress", "--output", str(tmp_path / "eval")])  # fmt: skip
    assert results["split"] == "validation" and results["test_images"] == round(0.1 * len(full.train))
    assert results["pipelines"]["plain"]["clean"] == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-6)


# ------------------------------------------------------------------------------- a run folder belongs to its run
def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_output_holding_the_users_own_files_is_refused_and_left_as_it_was(tmp_path, capsys, resume):
    """The review's row: --output at a folder of the user's own args.yaml / run.json / summary.csv (without an epoch
    column) / checkpoints/incomplete overwrote them, deleted the last, or crashed with KeyError: 'epoch'."""
    mine = tmp_path / "mine"
    for name, text in {"args.yaml": "my settings\n", "run.json": "{}", "summary.csv": "step,loss\n1,2\n",
                       "checkpoints/incomplete/notes.txt": "a draft"}.items():  # fmt: skip
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text(text)
    before = _snapshot(mine)
    err = cli_error(capsys, [*QUICK, "--output", str(mine), *(["--resume"] if resume else [])])
    assert "holds files that no training run wrote (args.yaml, checkpoints, run.json, summary.csv)" in err
    assert _snapshot(mine) == before


def test_an_empty_folder_becomes_the_runs_and_its_lock_is_released(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    main(argv=[*QUICK, "--limit-train", "16", "--limit-test", "8", "--output", str(run)])
    assert (run / ".isvs-run").is_file() and (run / "run.json").is_file() and not (run / "run.lock").exists()


def test_a_folder_locked_by_a_live_training_is_refused_naming_it_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    import socket
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    run.mkdir()
    (run / ".isvs-run").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": time.time()}
        (run / "run.lock").write_text(json.dumps(lock))
        err = cli_error(capsys, [*QUICK, "--output", str(run)])
        assert f"is being written by another training: process {holder.pid} on host" in err
        assert f"delete {run / 'run.lock'}" in err and sorted(p.name for p in run.iterdir()) == [
            ".isvs-run",
            "run.lock",
        ]
        (run / "run.lock").write_text(json.dumps({**lock, "host": "elsewhere"}))  # not checkable from here: refused
        assert "process" in cli_error(capsys, [*QUICK, "--output", str(run)])
        (run / "run.lock").write_text(json.dumps(lock))
    finally:
        holder.kill()
        holder.wait()
    # its process has ended (as after SIGKILL): the lock is stale, taken over, and released at the end
    main(argv=[*QUICK, "--limit-train", "16", "--limit-test", "8", "--output", str(run)])
    assert (run / "run.json").is_file() and not (run / "run.lock").exists()


def test_a_folder_claimed_by_another_training_while_this_one_looks_is_not_taken_for_the_users(tmp_path, monkeypatch):
    """Two trainings started at once: the second could look (no marker yet), then list the folder after the first
    wrote its marker, and refuse it as "files that no training run wrote (.isvs-run)". The lock decides instead."""
    from isvs_triton.train import run_folder

    run = tmp_path / "run"
    run.mkdir()

    def the_other_training_claims_it_meanwhile(folder):
        (folder / run_folder.MARKER).write_text("{}")
        return False

    monkeypatch.setattr(run_folder, "_holds_an_earlier_run", the_other_training_claims_it_meanwhile)
    run_folder.claim(run)
    assert sorted(p.name for p in run.iterdir()) == [run_folder.MARKER]


@pytest.mark.slow
def test_two_trainings_started_at_once_on_one_folder_never_both_write(tmp_path):
    """Both exited 0 and left a mixed folder. Now one trains; the other is refused (by the lock while the first
    runs, or because the folder already holds a finished run), and the folder is the winner's alone."""
    import subprocess
    import sys

    run = tmp_path / "run"
    argv = [*QUICK, "--limit-train", "48", "--limit-test", "8", "--output", str(run)]
    command = [sys.executable, "-m", "isvs_triton.train", *argv, "--seed"]
    starts = [subprocess.Popen([*command, str(seed)], stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    done = [(p.wait(timeout=600), p.stderr.read()) for p in starts]
    codes = sorted(code for code, _ in done)
    assert codes == [0, 2], done
    loser = next(err for code, err in done if code == 2)
    assert "is being written by another training" in loser or "already holds a run" in loser, loser
    seed = json.loads((run / "run.json").read_text())["config"]["seed"]
    assert f"seed: {seed}" in (run / "args.yaml").read_text()
    rows = (run / "summary.csv").read_text().splitlines()
    assert len(rows) == 2, rows  # the header and the winner's one epoch


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a CUDA GPU: this checks the CPU's refusal")
def test_fp16_on_a_cpu_is_refused_rather_than_recorded(tmp_path):
    """Accelerate keeps the name fp16 on a CPU but trains in float32: run.json would have recorded fp16."""
    import subprocess
    import sys

    argv = [*QUICK, "--amp-dtype", "fp16", "--output", str(tmp_path / "run")]  # a fresh process: a fresh Accelerate
    done = subprocess.run([sys.executable, "-m", "isvs_triton.train", *argv], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--amp-dtype fp16 (given here or by accelerate config) does not run on cpu" in done.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------ the evaluation refuses bad runs first
@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d["smoothing"].update(test_sparsity="0.6"), "smoothing.test_sparsity must be a number in (0, 1]"),
        (lambda d: d["config"].update(val_fraction="0.1"), "config: --val-fraction must be a finite number, got '0.1'"),
        (lambda d: d["config"].pop("dataset"), "config lacks ['dataset']"),
        (lambda d: d["config"].pop("seed"), "config lacks ['seed']"),
        (lambda d: d.update(num_classes=10**12), "num_classes must lie in [1, 1,000,000], got 1000000000000"),
        (lambda d: d.update(num_classes=2**70), "num_classes must lie in [1, 1,000,000]"),
        (lambda d: d["config"].update(lr=1e308), "config: --lr must lie in (0, 1000]"),
    ],
    ids=["sparsity-string", "val-fraction-string", "no-dataset", "no-seed", "classes-1e12", "classes-2^70", "lr"],
)
def test_a_hand_edited_run_json_is_refused_by_field(two_epoch_run, tmp_path, capsys, edit, message):
    run, _, _ = two_epoch_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    description = json.loads((copy / "run.json").read_text())
    edit(description)
    (copy / "run.json").write_text(json.dumps(description))
    err = evaluation_error(capsys, [str(copy)])
    assert f"{copy / 'run.json'}: " in err and message in err


def test_a_run_json_that_is_a_folder_or_not_utf8_is_named(two_epoch_run, tmp_path, capsys):
    run, _, _ = two_epoch_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "run.json").write_bytes(b'{"model": "r\xe9snet8"}')
    assert f"{copy / 'run.json'} cannot be read as a run description" in evaluation_error(capsys, [str(copy)])
    (copy / "run.json").unlink()
    (copy / "run.json").mkdir()
    assert f"{copy / 'run.json'} cannot be read as a run description" in evaluation_error(capsys, [str(copy)])


def test_the_evaluations_output_is_checked_before_the_first_image(two_epoch_run, tmp_path, capsys, monkeypatch):
    """An existing file as --output ran the whole evaluation, then lost it to a FileExistsError."""
    from isvs_triton.robustness import evaluate as evaluate_module

    run, _, _ = two_epoch_run
    monkeypatch.setattr(evaluate_module, "load_run", lambda *a, **k: pytest.fail("the run was loaded first"))
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert "is a file; the report needs a folder" in evaluation_error(capsys, [str(run), "--output", str(taken)])
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "plan.txt").write_text("mine")
    assert "holds files of its own (plan.txt)" in evaluation_error(capsys, [str(run), "--output", str(folder)])
    assert taken.read_text() == "mine" and (folder / "plan.txt").read_text() == "mine"


def test_a_model_with_non_finite_weights_or_logits_is_refused(two_epoch_run, tmp_path, capsys):
    """It was evaluated silently (clean = robust = 0.0625, exit 0)."""
    from safetensors.torch import save_file

    run, weights, _ = two_epoch_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    name = next(n for n, t in weights.items() if t.is_floating_point() and t.dim() == 2)  # the classifier's
    save_file({**weights, name: torch.full_like(weights[name], float("nan"))}, copy / "model.safetensors")
    err = evaluation_error(capsys, [str(copy)])
    assert f"holds NaN or Inf in ['{name}']" in err and "the training diverged" in err
    save_file({**weights, name: torch.full_like(weights[name], 3e38)}, copy / "model.safetensors")  # finite
    assert "gives NaN or Inf logits on test images" in evaluation_error(capsys, [str(copy)])
