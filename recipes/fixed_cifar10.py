"""ResNet-18 on CIFAR-10, every training image smoothed at sparsity 0.6 (the seed's CIFAR default).

accelerate launch recipes/fixed_cifar10.py                       # from the Hub
accelerate launch recipes/fixed_cifar10.py --data-dir ~/cifar10  # a local copy (save_to_disk / parquet)
python recipes/fixed_cifar10.py --cache-smoothed                 # smooth once through datasets.map
"""

from isvs_triton.train import main

DEFAULTS = dict(
    dataset="uoft-cs/cifar10",  # splits train / test, columns img / label
    model="resnet18",  # CIFAR stem
    procedure="fixed",
    sparsity=0.6,
    epochs=100,
    batch_size=128,
    lr=0.1,
    weight_decay=5e-4,
    warmup_epochs=2,
)

if __name__ == "__main__":
    main(DEFAULTS)
