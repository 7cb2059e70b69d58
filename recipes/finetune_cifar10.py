"""ResNet-18 on CIFAR-10: standard training, then fine-tuning on images smoothed at sparsity 0.6.

accelerate launch recipes/finetune_cifar10.py [--data-dir ~/cifar10]
"""

from isvs_triton.train import main

DEFAULTS = dict(
    dataset="uoft-cs/cifar10",
    model="resnet18",
    procedure="finetune",
    epochs=100,  # standard training
    finetune_epochs=20,  # then smoothed images, from lr / 10 down to 0
    sparsity=0.6,
    batch_size=128,
    lr=0.1,
    warmup_epochs=2,
)

if __name__ == "__main__":
    main(DEFAULTS)
