"""What tools/gpu_check.sh measures on a GPU, in one JSON file: the kernels against the torch backend at real sizes,
their throughput over batch sizes for the default (events) and FAST, the events integrator's two Triton paths (one
program per image, tile-parallel) over sizes, the smoothing's share of a training step, and whether a CUDA graph
captures SparsifyLayer.

    python tools/gpu_timing.py --output gpu_check/timing.json            # on a CUDA GPU (the triton backend)
    python tools/gpu_timing.py --device cpu --quick --output t.json      # the same steps on the CPU (numba), small

Each section is timed with CUDA events after warm-up calls (on the CPU, with the wall clock) and written as soon as
it is done, so a run stopped by its deadline keeps what it finished. Images: crops of the bundled photographs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

import isvs_triton as isvs
from isvs_triton.config import EVENTS, FAST
from isvs_triton.samples import crops

PRESETS = {"events": EVENTS, "fast": FAST}
SPARSITY = {32: 0.6, 224: 0.3}  # the seed's defaults for CIFAR-size and ImageNet-size images


def _sparsity(size: int) -> float:
    return SPARSITY.get(size, SPARSITY[32] if size <= 64 else SPARSITY[224])


def _clock(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _best_seconds(device: torch.device, repeat: int, call, *args, **kwargs) -> float:
    """The shortest of ``repeat`` timed calls of ``call(*args, **kwargs)``, after one warm-up call."""
    call(*args, **kwargs)  # warm-up: compilation, allocation
    times = []
    for _ in range(repeat):
        start = _clock(device)
        call(*args, **kwargs)
        times.append(_clock(device) - start)
    return min(times)


def agreement(device: torch.device, backend: str, settings) -> list[dict]:
    """The backend against the torch backend on the same device: iterations, stops and regions per image, outputs;
    determinism (two calls) and batch independence (the first image alone)."""
    rows = []
    for size, batch in settings:
        x = crops(size, batch, seed=1).to(device)
        for name, preset in PRESETS.items():
            options = {**preset.kwargs(), "return_info": True}
            out, info = isvs.sparsify(x, _sparsity(size), backend=backend, **options)
            again, _ = isvs.sparsify(x, _sparsity(size), backend=backend, **options)
            alone, _ = isvs.sparsify(x[:1], _sparsity(size), backend=backend, **options)
            ref, ref_info = isvs.sparsify(x, _sparsity(size), backend="torch", **options)
            rows.append({
                "size": size, "batch": batch, "preset": name,
                "deterministic": bool(torch.equal(out, again)),
                "batch_independent": bool(torch.equal(out[:1], alone)),
                "iterations_differ": int((info.iterations != ref_info.iterations).sum()),
                "regions_differ": int((info.regions != ref_info.regions).sum()),
                "stops_differ": int((info.stop != ref_info.stop).sum()),
                "max_output_difference": float((out - ref).abs().max()),
                "rms_output_difference": float((out - ref).square().mean().sqrt()),
            })  # fmt: skip
    return rows


def _images(size: int, batch: int, device: torch.device) -> torch.Tensor:
    """``batch`` crops of ``size``: up to 256 distinct ones, repeated to fill larger batches."""
    x = crops(size, min(batch, 256), seed=0).to(device)
    return x.repeat((batch + len(x) - 1) // len(x), 1, 1, 1)[:batch].contiguous()


def throughput(device: torch.device, backend: str, settings, repeat: int) -> list[dict]:
    """images/s of whole sparsify calls, events and FAST, per (size, batch)."""
    rows = []
    for size, batch in settings:
        x = _images(size, batch, device)
        for name, preset in PRESETS.items():
            options = {"backend": backend, **preset.kwargs()}
            seconds = _best_seconds(device, repeat, isvs.sparsify, x, _sparsity(size), **options)
            rows.append({"size": size, "batch": batch, "preset": name, "images_per_second": batch / seconds})
    return rows


def events_paths(device: torch.device, settings, repeat: int) -> list[dict]:
    """images/s of the events integrator's Triton paths on the same calls, per (size, batch, channels): on chip
    (triton_events_onchip.py, where the image fits), one program per image in global memory (triton_events.py) and
    tile-parallel (triton_events_tiled.py), which settles the dispatch's switches (``triton_fused.EVENTS_ON_CHIP``
    and ``EVENTS_PER_IMAGE_MAX_SIDE``)."""
    from isvs_triton.ops.lbi import triton_events_onchip, triton_fused

    saved = triton_fused.EVENTS_ON_CHIP, triton_fused.EVENTS_PER_IMAGE_MAX_SIDE
    paths = {"on chip": (True, 1 << 30), "global memory": (False, 1 << 30), "tiled": (False, 0)}
    rows = []
    try:
        for size, batch, channels in settings:
            x = _images(size, batch, device)[:, :channels].contiguous()
            for path, switches in paths.items():
                if path == "on chip" and not triton_events_onchip.fits_on_chip(channels, size, size):
                    continue
                triton_fused.EVENTS_ON_CHIP, triton_fused.EVENTS_PER_IMAGE_MAX_SIDE = switches
                seconds = _best_seconds(device, repeat, isvs.sparsify, x, _sparsity(size), backend="triton")
                rows.append({"size": size, "batch": batch, "channels": channels, "path": path,
                             "images_per_second": batch / seconds})  # fmt: skip
    finally:
        triton_fused.EVENTS_ON_CHIP, triton_fused.EVENTS_PER_IMAGE_MAX_SIDE = saved
    return rows


def step_share(device: torch.device, settings, repeat: int) -> list[dict]:
    """The smoothing's share of a training step: a model's forward, backward and SGD step on a batch (bf16 autocast
    on a GPU) against smoothing the same batch, per preset."""
    from isvs_triton.models import create_model

    rows = []
    for model_name, size, batch in settings:
        model = create_model(model_name, num_classes=100, image_size=size).to(device)
        model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = _images(size, batch, device)
        y = torch.randint(0, 100, (batch,), device=device)

        model_seconds = _best_seconds(device, repeat, _train_step, model, optimizer, x, y)
        for name, preset in PRESETS.items():
            smooth = _best_seconds(device, repeat, isvs.sparsify, x, _sparsity(size), **preset.kwargs())
            rows.append({"model": model_name, "size": size, "batch": batch, "preset": name,
                         "step_seconds": model_seconds, "smoothing_seconds": smooth,
                         "smoothing_share": smooth / (smooth + model_seconds)})  # fmt: skip
    return rows


def _train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def graph_capture(device: torch.device) -> dict:
    """Whether SparsifyLayer runs inside a captured CUDA graph (torch.cuda.graphs), per preset and image shape — 28²
    greyscale (the on-chip events kernel), 32² colour (one program per image), 96² colour (the events default's
    tile-parallel path, which reads back once a call; the explicit launch per iteration) — and why not where it does
    not."""
    if device.type != "cuda":
        return {"captured": False, "why": "CUDA graphs need a CUDA device"}
    result = {}
    for (size, channels, batch), (name, preset) in itertools.product(((28, 1, 64), (32, 3, 64), (96, 3, 8)),
                                                                      PRESETS.items()):  # fmt: skip
        layer = isvs.SparsifyLayer(0.6, **preset.kwargs())
        x = crops(size, batch, seed=3)[:, :channels].contiguous().to(device)
        key = f"{name} {size}x{size}x{channels}"
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                layer(x)  # warm-up outside the graph, as capture requires
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = layer(x)
            graph.replay()
            result[key] = {"captured": True, "equal_to_eager": bool(torch.equal(out, layer(x)))}
        except Exception as error:  # noqa: BLE001 - the report records why capture fails, whatever raised
            result[key] = {"captured": False, "why": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the triton backend) or cpu (numba)")
    parser.add_argument("--output", default="gpu_timing.json", help="the JSON file written, section by section")
    parser.add_argument("--quick", action="store_true", help="small sizes and batches: checks the steps, not speed")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per setting; the best is kept")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU")
    backend = "triton" if device.type == "cuda" else "numba"
    if args.quick:
        real, batches, models, repeat = [(32, 8)], [(32, 8), (32, 16)], [("resnet8", 32, 8)], 1
        paths = [(28, 8, 1), (32, 8, 3), (96, 2, 3)]
    else:
        real = [(32, 256), (224, 16)]
        batches = [(32, b) for b in (16, 132, 256, 512, 2048)] + [(224, b) for b in (16, 128)]
        models, repeat = [("resnet18", 32, 256), ("resnet50", 224, 64)], args.repeat
        paths = [(28, 512, 1), (32, 512, 1), (16, 512, 3), (32, 256, 3), (64, 64, 3), (96, 64, 3), (224, 16, 3)]
        paths += [(224, 128, 3)]
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "backend": backend,
    }
    output = Path(args.output)
    sections = (
        ("agreement", lambda: agreement(device, backend, real)),
        ("graph_capture", lambda: graph_capture(device)),  # short, and before the long sections a deadline may cut
        ("throughput", lambda: throughput(device, backend, batches, repeat)),
        # the events paths' crossover (the triton backend only: numba has one path)
        *([("events_paths", lambda: events_paths(device, paths, repeat))] if backend == "triton" else []),
        ("step_share", lambda: step_share(device, models, repeat)),
    )
    for name, run in sections:
        start = time.perf_counter()
        report[name] = run()
        report[f"{name}_seconds"] = time.perf_counter() - start
        output.write_text(json.dumps(report, indent=2))  # what is done survives a deadline
        print(f"{name}: {json.dumps(report[name])}", flush=True)
    return report


if __name__ == "__main__":
    main()
