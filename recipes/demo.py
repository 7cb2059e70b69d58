"""Demo: ISVS training on the embedded photo-patches data (ten photographs bundled with scikit-image, 32x32 patches,
3,200 training and 800 test images), a few minutes on a CPU. Prints where its run folder is.

    python recipes/demo.py                     # or: accelerate launch recipes/demo.py
    python recipes/demo.py --epochs 3 --output runs/demo-short
"""

from isvs_triton.train import main

DEFAULTS = dict(
    dataset="photo-patches",
    model="resnet8",  # 0.3 M parameters: ~900 images/s of training on 2 CPU cores
    procedure="iterative",
    schedule=[0.2, 0.4, 0.6],  # coarse to fine: one stage per sparsity
    epochs=12,  # 4 per stage
    batch_size=64,
    lr=0.05,
    output="runs/demo",
)

if __name__ == "__main__":
    main(DEFAULTS)
