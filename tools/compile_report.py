"""Compile every Triton kernel ahead of time for real GPUs (no GPU needed) and report registers, spills and shared
memory.

    python tools/compile_report.py                 # sm_80 and sm_90, every configuration the dispatcher can launch
    python tools/compile_report.py --archs 90

For each kernel and configuration: ``triton.compile`` of an ``ASTSource`` with a ``GPUTarget``, then the bundled
``ptxas -v`` on the PTX for the register and spill counts. Prints a Markdown table; exits with status 1 on any
compile failure or spill. Runs with TRITON_INTERPRET unset (the interpreter replaces kernels by Python functions).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

os.environ["TRITON_INTERPRET"] = "0"  # before triton is imported: compile, do not interpret

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.nvidia.compiler import get_ptxas  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from isvs_triton.ops.lbi import (  # noqa: E402
    triton_events,
    triton_events_onchip,
    triton_events_tiled,
    triton_kernels,
    triton_launch,
)


def launch_configs() -> list[dict]:
    """The default launch configuration and every tuned one shipped in ops/configs/*.json."""
    configs = [triton_launch.DEFAULT_LAUNCH]
    for path in sorted(triton_launch.CONFIG_DIR.glob("*.json")):
        configs += json.loads(path.read_text()).get("lbi_step", {}).values()
    unique = {tuple(sorted(c.items())): c for c in configs}
    return list(unique.values())


def lbi_sources():
    """(name, ASTSource, num_warps) for both Split LBI kernels at every launch configuration the dispatcher can use."""
    common = {**dict.fromkeys(("p_beta", "p_zh", "p_zv", "p_xs"), "*fp32"),
              **dict.fromkeys(("p_need", "p_budget", "p_iters", "p_count"), "*i32"),
              **dict.fromkeys(("p_limit", "p_resid"), "*fp64")}  # fmt: skip
    solver = dict.fromkeys(("kappa", "step_z", "step_beta", "inv_nu", "momentum"), "fp32")
    sizes = {  # each kernel's integer arguments, in order
        triton_kernels._lbi_step_kernel: ("k", "B", "C", "H", "W", "tiles_w", "slot_beta", "slot_zh", "slot_zv"),
        triton_kernels._lbi_persistent_kernel: ("C", "H", "W", "tiles_h", "tiles_w", "slot_beta", "slot_zh", "slot_zv"),
    }
    for kernel, ints in sizes.items():
        flags = itertools.product(launch_configs(), (False, True), (False, True), (False, True))
        for launch, joint, momentum, noise in flags:
            block_h, block_w = launch["BLOCK_H"], launch["BLOCK_W"]
            constexprs = {"JOINT": joint, "MOMENTUM": momentum, "NOISE": noise, "BLOCK_H": block_h, "BLOCK_W": block_w}
            signature = {**common, **dict.fromkeys(ints, "i32"), **solver, **dict.fromkeys(constexprs, "constexpr")}
            name = f"{kernel.fn.__name__} joint={joint} momentum={momentum} noise={noise} block={block_h}x{block_w}"
            yield name, ASTSource(kernel, signature, constexprs), launch["num_warps"]


def events_sources():
    """(name, ASTSource, num_warps) for the events integrator's kernel, with and without the joint shrinkage and the
    noise stop."""
    names = triton_events._events_kernel.arg_names
    types = {"p_jh": "*i8", "p_jv": "*i8", "p_fresh": "*i8", "p_limit": "*fp64",
             **dict.fromkeys(("p_need", "p_per_step", "p_iters", "p_out_iters"), "*i32"),
             **dict.fromkeys(("C", "H", "W", "max_iter", "iterations"), "i32"),
             **dict.fromkeys(("inv_nu", "inv_kappa", "floor"), "fp32")}  # fmt: skip
    for joint, noise in itertools.product((False, True), (False, True)):
        constexprs = {"JOINT": joint, "NOISE": noise, "BLOCK": triton_events.BLOCK}
        signature = {name: "constexpr" if name in constexprs else types.get(name, "*fp32") for name in names}
        name = f"_events_kernel joint={joint} noise={noise} block={triton_events.BLOCK}"
        yield name, ASTSource(triton_events._events_kernel, signature, constexprs), triton_events.NUM_WARPS


# the on-chip kernel's padded shapes (CP, HP, WP) compiled: the most values a thread holds (1,024 elements), square and
# elongated within its bounds (triton_events_onchip.fits_on_chip); the dispatch's other shapes hold fewer
ON_CHIP_SHAPES = ((1, 32, 32), (4, 16, 16), (2, 32, 16), (4, 8, 32), (4, 32, 8))


def onchip_events_sources():
    """(name, ASTSource, num_warps) for the on-chip events kernel at ON_CHIP_SHAPES, with and without the joint
    shrinkage and the noise stop."""
    kernel = triton_events_onchip._events_onchip_kernel
    types = {"p_jh": "*i8", "p_jv": "*i8", "p_fresh": "*i8", "p_limit": "*fp64",
             **dict.fromkeys(("p_need", "p_per_step", "p_iters", "p_out_iters"), "*i32"),
             **dict.fromkeys(("C", "H", "W", "max_iter", "iterations"), "i32"),
             **dict.fromkeys(("inv_nu", "inv_kappa", "floor"), "fp32")}  # fmt: skip
    for (cp, hp, wp), joint, noise in itertools.product(ON_CHIP_SHAPES, (False, True), (False, True)):
        constexprs = {"JOINT": joint, "NOISE": noise, "CP": cp, "HP": hp, "WP": wp}
        signature = {name: "constexpr" if name in constexprs else types.get(name, "*fp32") for name in kernel.arg_names}
        name = f"_events_onchip_kernel joint={joint} noise={noise} shape={cp}x{hp}x{wp}"
        yield name, ASTSource(kernel, signature, constexprs), triton_events_onchip.NUM_WARPS


def tiled_events_sources():
    """(name, ASTSource, num_warps) for the tiled events path's kernels: the four passes with independent and joint
    channels, the order statistic's histogram and pick at both widths."""
    tiled = triton_events_tiled
    types = {**dict.fromkeys(("p_jh", "p_jv"), "*u8"), "p_entries": "*i32", "p_counts": "*i32",
             **dict.fromkeys(("p_prefix", "p_rank"), "*i64"),
             **dict.fromkeys(("C", "H", "W", "n", "shift", "first", "last"), "i32"),
             **dict.fromkeys(("inv_nu", "inv_kappa", "floor"), "fp32")}  # fmt: skip
    warps = tiled.NUM_WARPS
    passes = (tiled._times_kernel, tiled._move_kernel, tiled._correct_kernel)
    variants = [(k, {"JOINT": joint, "BLOCK": tiled.BLOCK}, warps) for k in passes for joint in (False, True)]
    solve = {"TILE": tiled.TILE, "SPAN": tiled.SPAN}
    variants += [(tiled._chebyshev_kernel, {"JOINT": joint, **solve}, tiled.SOLVE_WARPS) for joint in (False, True)]
    variants += [(tiled._histogram_kernel, {"BITS": bits, "BLOCK": tiled.BLOCK}, warps) for bits in (11, 10)]
    variants += [(tiled._pick_kernel, {"BITS": bits, "LAST": bits == 10}, warps) for bits in (11, 10)]
    for kernel, constexprs, num_warps in variants:
        signature = {n: "constexpr" if n in constexprs else types.get(n, "*fp32") for n in kernel.arg_names}
        name = f"{kernel.fn.__name__} " + " ".join(f"{k.lower()}={v}" for k, v in constexprs.items())
        yield name, ASTSource(kernel, signature, constexprs), num_warps


def write_back_sources():
    """(name, ASTSource, num_warps) for the copy of the final states out of the slots."""
    pointers = {**dict.fromkeys(("p_beta", "p_zh", "p_zv"), "*fp32"), "p_iters": "*i32",
                **dict.fromkeys(("p_beta_d", "p_zh_d", "p_zv_d", "p_pbeta_d", "p_pzh_d", "p_pzv_d"), "*fp32"),
                "p_rows": "*i64"}  # fmt: skip
    scalars = dict.fromkeys(("C", "H", "W", "tiles_w", "slot_beta", "slot_zh", "slot_zv", "write_prev"), "i32")
    for launch, joint in itertools.product(launch_configs(), (False, True)):
        constexprs = {"JOINT": joint, "BLOCK_H": launch["BLOCK_H"], "BLOCK_W": launch["BLOCK_W"]}
        signature = {**pointers, **scalars, **dict.fromkeys(constexprs, "constexpr")}
        name = f"_write_back_kernel joint={joint} block={launch['BLOCK_H']}x{launch['BLOCK_W']}"
        yield name, ASTSource(triton_kernels._write_back_kernel, signature, constexprs), launch["num_warps"]


def projection_sources():
    """(name, ASTSource, num_warps) for the block projection kernels."""
    from isvs_triton.ops.projection import triton_block as tb

    i32 = "i32"
    kernels = {
        "_tile_label_kernel": (tb._tile_label_kernel, {"p_label": "*i32", "p_ah": "*i8", "p_av": "*i8", "H": i32,
                               "W": i32, "tiles_w": i32}, {"BLOCK_H": tb.BLOCK_H, "BLOCK_W": tb.BLOCK_W}),
        "_merge_kernel": (tb._merge_kernel, {"p_label": "*i32", "p_ah": "*i8", "p_av": "*i8", "H": i32, "W": i32,
                          "n": i32}, {"BLOCK": tb.BLOCK, "BLOCK_H": tb.BLOCK_H, "BLOCK_W": tb.BLOCK_W}),
        "_flatten_kernel": (tb._flatten_kernel, {"p_label": "*i32", "n": i32}, {"BLOCK": tb.BLOCK}),
        "_region_sum_kernel": (tb._region_sum_kernel, {"p_values": "*fp32", "p_label": "*i32", "p_sums": "*fp32",
                               "p_counts": "*i32", "p_regions": "*i32", "C": i32, "G": i32, "HW": i32, "n": i32},
                               {"BLOCK": tb.BLOCK}),
        "_region_mean_kernel": (tb._region_mean_kernel, {"p_out": "*fp32", "p_label": "*i32", "p_sums": "*fp32",
                                "p_counts": "*i32", "C": i32, "G": i32, "HW": i32, "n": i32}, {"BLOCK": tb.BLOCK}),
    }  # fmt: skip
    for name, (fn, signature, constexprs) in kernels.items():
        signature = {**signature, **dict.fromkeys(constexprs, "constexpr")}
        yield name, ASTSource(fn, signature, constexprs), 4


def ptxas_usage(ptx: str, arch: int) -> dict:
    """Registers and spill bytes from ``ptxas -v``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        target = re.search(r"\.target\s+(sm_\w+)", ptx).group(1)  # sm_90a on Hopper
        result = subprocess.run([get_ptxas(arch).path, f"-arch={target}", "-v", path, "-o", os.devnull],
                                capture_output=True, text=True, check=True)  # fmt: skip
    text = result.stderr + result.stdout
    registers = int(re.search(r"Used (\d+) registers", text).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", text))
    return {"registers": registers, "spill_bytes": spills}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="80,90", help="compute capabilities, comma-separated")
    args = parser.parse_args(argv)
    failures = 0
    print("| kernel | target | warps | registers | spill bytes | shared bytes |\n|---|---|---|---|---|---|")
    for arch in map(int, args.archs.split(",")):
        for name, source, warps in itertools.chain(
            lbi_sources(),
            events_sources(),
            onchip_events_sources(),
            tiled_events_sources(),
            write_back_sources(),
            projection_sources(),
        ):
            try:
                compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
                usage = ptxas_usage(compiled.asm["ptx"], arch)
            except Exception as error:  # report every configuration, then fail
                print(f"| {name} | sm_{arch} | {warps} | compile failed: {type(error).__name__}: {error} | | |")
                failures += 1
                continue
            failures += usage["spill_bytes"] > 0
            print(f"| {name} | sm_{arch} | {warps} | {usage['registers']} | {usage['spill_bytes']} | "
                  f"{compiled.metadata.shared} |")  # fmt: skip
    print(f"\n{failures} failure(s)" if failures else "\nall kernels compiled without spills")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
