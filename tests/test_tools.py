"""The tools run end to end and write what they promise."""

from pathlib import Path

from tools import (
    bench,
    bench_inference,
    calibrate,
    compare_trees,
    denoise_bench,
    fashion_mnist,
    path_figure,
    profile_sparsify,
)


def test_path_figure_writes_png(tmp_path, capsys):
    output = path_figure.main(["--photo", "chelsea", "--size", "24", "--sparsities", "0.2,0.5", "--output",
                               str(tmp_path / "path.png")])  # fmt: skip
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| independent | 0.5 |" in printed and "| joint | 0.2 |" in printed


def test_calibrate_writes_table_with_baselines(tmp_path, capsys):
    output = tmp_path / "cal"
    rows = calibrate.main(["--size", "8", "--count", "3", "--grid", "scale=100;nu=1;momentum=0.9", "--config",
                           "scale=30,nu=1,momentum=0.9", "--cache-dir", str(tmp_path),
                           "--output", str(output)])  # fmt: skip
    names = [r["name"] for r in rows]
    assert names[:2] == ["baseline: input unchanged", "baseline: largest-jump edges"]
    identity = rows[0]
    assert identity["rel"] == 1.0 and identity["rel_worst"] == 1.0
    assert any("scale=30" in n for n in names) and any("scale=100" in n for n in names)
    assert "events, nu=1, events=0.045, tolerance=0.01" in names, "the presets are measured too"
    table = output.with_suffix(".md").read_text()
    assert "(events preset)" in table and "(fast preset)" in table and "(faithful preset)" in table
    assert "denoise σ 0.08" in table and "chambolle at its best weight" in table
    assert all(len(r["denoise"]) == 3 for r in rows[2:]), "every candidate's denoising, at the three sigmas"
    assert table.count("\n| ") >= 5 and output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert list(tmp_path.glob("ref_8_3_*.pt")), "the reference outputs are cached"
    again = calibrate.main(["--size", "8", "--count", "3", "--grid", "", "--cache-dir", str(tmp_path), "--output",
                            str(output)])  # fmt: skip
    assert again[0] == identity


def test_bench_prints_every_provider(tmp_path, capsys):
    csv_path = tmp_path / "bench.csv"
    rows = bench.main(["--sizes", "32", "--batch", "4", "--repeat", "1", "--csv", str(csv_path)])
    providers = {r["provider"] for r in rows}
    assert {
        "skimage denoise_tv_chambolle (100 it)",
        "isvs torch backend (defaults)",
        "of which projection",
        "isvs numba backend (fast preset)",
    } <= providers
    assert all(r["images_per_s"] > 0 for r in rows)
    assert csv_path.read_text().count("\n") == len(rows) + 1


def test_bench_inference_prints_both_passes(capsys):
    bench_inference.main(["--batch", "4", "--size", "16", "--rounds", "1", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "| forward |" in out and "| input gradient |" in out
    difference = float(out.split("max |logit difference| ")[1].split(";")[0])
    assert difference < 1e-4, "the folded model computes the same logits"


def test_bench_on_cuda_needs_a_gpu(capsys):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the message of one without is not reachable")
    with pytest.raises(SystemExit) as error:
        bench.main(["--device", "cuda", "--csv", ""])
    assert error.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err


def test_profile_sparsify_prints_wall_time_and_operations(capsys):
    profile_sparsify.main(["--device", "cpu", "--settings", "16:4", "--rows", "3"])
    out = capsys.readouterr().out
    assert "16x16x3 B=4, sparsity 0.6: wall" in out and "ms per call" in out and "aten::" in out


def test_compare_trees_times_each_tree_and_refuses_what_is_not_one(capsys):
    import pytest

    compare_trees.main([".", ".", "--rounds", "2", "--repeat", "1", "--threads", "1", "--preset", "fast"])
    out = capsys.readouterr().out
    assert "32x32x3, B=256, sparsity 0.6, the fast preset, 1 threads" in out and out.count("round ") == 2
    assert ". / .: " in out and "x over the rounds" in out
    with pytest.raises(SystemExit, match="neither a directory with isvs_triton/ nor a git revision"):
        compare_trees.main(["no-such-revision-xyz", ".", "--rounds", "1"])


def _idx(path: Path, array) -> None:
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_fashion_mnist_copy_loads_like_the_hub_dataset(tmp_path):
    """Small idx files the test writes (not the Debian package) become a copy laid out like
    zalando-datasets/fashion_mnist: splits, columns, class names and pixels, through isvs_triton.data.load_data."""
    import numpy as np

    from isvs_triton.data import Images, load_data

    rng = np.random.default_rng(0)
    source = tmp_path / "idx"
    source.mkdir()
    arrays = {}
    for split, count in (("train", 12), ("test", 5)):
        images, labels = (
            rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count).astype(np.uint8),
        )
        image_file, label_file = fashion_mnist.FILES[split]
        _idx(source / image_file, images)
        _idx(source / label_file, labels)
        arrays[split] = (images, labels)
    assert fashion_mnist.main([str(tmp_path / "copy"), "--source", str(source)]) == {"train": 12, "test": 5}
    data = load_data("zalando-datasets/fashion_mnist", data_dir=str(tmp_path / "copy"))
    assert (len(data.train), len(data.test), data.num_classes, data.image_size) == (12, 5, 10, 28)
    assert data.train.features["label"].names[0] == "T - shirt / top"
    images, labels = arrays["test"]
    for i in range(5):
        _, tensor, label = Images(data.test, 28, "test")[i]
        assert label == labels[i] and all(np.array_equal(tensor[c].numpy(), images[i]) for c in range(3))


def test_denoise_bench_prints_its_tables(capsys):
    denoise_bench.main(["--size", "8", "--count", "3", "--noises", "gaussian:0.1,clean", "--presets", "fast",
                        "--projections", "none", "--discrepancy", "1.0", "--no-chambolle"])  # fmt: skip
    out = capsys.readouterr().out
    assert "| 0.1 |" in out and "gaussian:0.1: noisy input" in out and "| fast | none |" in out


def test_denoise_bench_on_test_images_at_a_training_sparsity(capsys):
    denoise_bench.main(["--dataset", "photo-patches", "--count", "4", "--noises", "gaussian:0.1", "--presets",
                        "fast", "--projections", "auto", "--sparsity", "0.4", "--discrepancy", "1.0",
                        "--no-chambolle"])  # fmt: skip
    out = capsys.readouterr().out
    assert "4 test images of photo-patches (32 px)" in out and "sparsity 0.4, no noise stop" in out
    assert "| fast | auto |" in out and "by noise)" in out


def test_every_command_line_flag_has_help():
    """tools/, recipes/compare.py and the library's CLIs: an add_argument without help= is a flag --help leaves
    unexplained."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [*root.glob("tools/*.py"), *root.glob("recipes/*.py"), *root.glob("isvs_triton/**/*.py")]
    bare = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            is_add = isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
            if is_add and not any(k.arg in ("help", None) for k in node.keywords):  # None: **options, help inside
                bare.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not bare, bare


def test_the_gpu_timing_steps_run_on_the_cpu(tmp_path):
    """tools/gpu_timing.py (what tools/gpu_check.sh runs on a lent GPU) on the CPU with numba: every section runs and
    is written, the CPU kernels agree with the torch backend, and the check script parses."""
    import json
    import subprocess

    from tools import gpu_timing

    report = gpu_timing.main(["--device", "cpu", "--quick", "--output", str(tmp_path / "timing.json")])
    assert json.loads((tmp_path / "timing.json").read_text()) == report
    assert all(
        r["deterministic"] and r["batch_independent"] and r["iterations_differ"] == 0 for r in report["agreement"]
    )
    assert {r["preset"] for r in report["throughput"]} == {"events", "fast"} and report["step_share"]
    assert report["graph_capture"] == {"captured": False, "why": "CUDA graphs need a CUDA device"}
    assert subprocess.run(["bash", "-n", "tools/gpu_check.sh"]).returncode == 0


def test_the_gpu_timing_of_the_events_paths_runs_in_the_interpreter():
    """tools/gpu_timing.py's events_paths section (the triton backend only) on CPU tensors in Triton's interpreter:
    one row per path, the dispatch's switches restored after it."""
    import torch

    from isvs_triton.ops.lbi import triton_fused
    from tools import gpu_timing

    switches = triton_fused.EVENTS_ON_CHIP, triton_fused.EVENTS_PER_IMAGE_MAX_SIDE
    rows = gpu_timing.events_paths(torch.device("cpu"), [(8, 2, 1)], repeat=1)
    assert [r["path"] for r in rows] == ["on chip", "global memory", "tiled"]
    assert all(r["images_per_second"] > 0 for r in rows)
    assert (triton_fused.EVENTS_ON_CHIP, triton_fused.EVENTS_PER_IMAGE_MAX_SIDE) == switches
