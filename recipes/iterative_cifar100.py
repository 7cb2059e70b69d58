"""ResNet-18 on CIFAR-100, iterative ISVS training: stages at rising sparsity, each continuing every image's path.

    accelerate launch recipes/iterative_cifar100.py [--data-dir ~/cifar100]

Path state of 50,000 32x32x3 images with the default solver (events, no momentum): 50,000 x 35.3 KiB = 1.7 GiB of
host memory per process (3.4 GiB with --solver fast or faithful, which keep the previous iterate too), within the
default --path-state-budget 4GiB; below the budget each stage recomputes the path.
"""

from isvs_triton.train import main

DEFAULTS = dict(
    dataset="uoft-cs/cifar100",  # columns img / fine_label / coarse_label: the 100 fine classes
    label_column="fine_label",
    model="resnet18",
    procedure="iterative",
    schedule=[0.2, 0.4, 0.6],
    epochs=150,  # 50 per stage
    batch_size=128,
    lr=0.1,
    warmup_epochs=2,
)

if __name__ == "__main__":
    main(DEFAULTS)
