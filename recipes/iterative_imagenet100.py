"""ResNet-50 on ImageNet-100 at 224x224, iterative ISVS training along sparsities 0.1 -> 0.3 (the seed's ImageNet
default is 0.3). Images are decoded and resized to 224 by the DataLoader workers; smoothing, random-resized-crop and
flip run on the GPU (Triton kernels).

    accelerate launch --multi_gpu --num_processes 8 recipes/iterative_imagenet100.py --workers 8
    accelerate launch recipes/iterative_imagenet100.py --data-dir /data/imagenet-100 --amp-dtype bf16

The path state of 126,689 224x224x3 images is ~425 GiB: above the default budget, so each stage recomputes the
path on the fly (same images, more iterations); raise --path-state-budget on hosts that can hold it.
"""

from isvs_triton.train import main

DEFAULTS = dict(
    dataset="clane9/imagenet-100",  # splits train / validation, columns image / label
    model="resnet50",
    procedure="iterative",
    schedule=[0.1, 0.2, 0.3],
    epochs=90,  # 30 per stage
    batch_size=128,  # per GPU
    lr=0.2,
    weight_decay=1e-4,
    warmup_epochs=5,
    label_smoothing=0.1,
    amp_dtype="bf16",
    checkpoint_every=1000,
)

if __name__ == "__main__":
    main(DEFAULTS)
