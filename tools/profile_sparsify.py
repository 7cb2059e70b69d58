"""Where the time of one ``sparsify`` call goes: wall time against kernel time, launches, the costliest operations.

    python tools/profile_sparsify.py --device cuda                  # 224² B=16, 32² B=128, 224² B=128
    python tools/profile_sparsify.py --device cpu --settings 32:256

Warm calls on bundled-photograph crops (defaults); ``torch.profiler`` over one call prints its top operations.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import isvs_triton as isvs
from isvs_triton.samples import BENCH_SETTINGS as SETTINGS
from isvs_triton.samples import crops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where it runs")
    parser.add_argument("--settings", default="224:16,32:128,224:128", help="size:batch pairs")
    parser.add_argument("--rows", type=int, default=14, help="operations listed per setting")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else lambda: None
    for setting in args.settings.split(","):
        size, batch = map(int, setting.split(":"))
        x, sparsity = crops(size, batch, seed=0).to(device), SETTINGS.get(size, (None, 0.6))[1]
        for _ in range(3):  # compile and warm up
            isvs.sparsify(x, sparsity)
        sync()
        start = time.perf_counter()
        for _ in range(10):
            isvs.sparsify(x, sparsity)
        sync()
        wall = (time.perf_counter() - start) / 10
        activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
        with profile(activities=activities) as prof:
            isvs.sparsify(x, sparsity)
            sync()
        events = prof.key_averages()
        line = f"\n{size}x{size}x3 B={batch}, sparsity {sparsity}: wall {wall * 1e3:.2f} ms per call"
        if cuda:
            kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time_total]
            line += (
                f", GPU kernels {sum(e.device_time_total for e in kernels) / 1e3:.2f} ms, "
                f"{sum(e.count for e in kernels)} kernel launches"
            )
        print(line)
        sort = "device_time_total" if cuda else "self_cpu_time_total"
        print(events.table(sort_by=sort, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
