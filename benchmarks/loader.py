"""Batches per second: gan-edu's DeviceLoader vs the usual torch DataLoader with torchvision transforms.

The usual loop (PyTorch examples, most GAN repositories) decodes every image to PIL in worker
processes and applies ``RandomHorizontalFlip``, ``ToTensor`` and ``Normalize`` to it, every epoch.
The DeviceLoader decodes the set once into a uint8 tensor on the device and makes each batch by
indexing it, converting to [-1, 1] and flipping there. Both produce the same thing: shuffled,
randomly flipped float batches in [-1, 1] on the device.

    python benchmarks/loader.py --data-root DIR     # real CIFAR-10 from DIR/cifar-10-batches-py
    python benchmarks/loader.py                     # the built-in shapes (50,000 images, 32x32 RGB)

Prints both rates and their ratio, from one run. The first batch of each (worker start-up,
first copy) is not timed; the DeviceLoader's one-off decode is printed separately.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from gan_edu.data import DeviceLoader, load_dataset
from gan_edu.data.loader import default_num_workers
from gan_edu.training.trainer import resolve_device


class PILImages(Dataset):
    """Images handed out as PIL images, as torchvision's data sets do, then transformed."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        from PIL import Image

        self.to_pil = Image.fromarray
        self.images = images.permute(0, 2, 3, 1).squeeze(-1).numpy()  # (N, H, W, C) or (N, H, W), as stored
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.to_pil(self.images[i])), self.labels[i]


def rate(batches: Iterator, n: int, device: torch.device) -> float:
    """Batches per second over ``n`` batches after the first."""
    x, y = next(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        x, y = next(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", help="folder with cifar-10-batches-py/ (default: the built-in shapes)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=200, help="batches timed per loader")
    p.add_argument("--workers", type=int, default=default_num_workers(), help="DataLoader workers (default: one per core, at most 8)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch threads of this process (default: torch's own); 1 helps on a busy CPU")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    t0 = time.perf_counter()
    if args.data_root:
        data = load_dataset("cifar10", data_root=args.data_root, download=False)
    else:
        data = load_dataset("shapes", n=50_000)
    load_s = time.perf_counter() - t0
    c = data.image_shape[0]
    print(f"data: {data.name}, {len(data):,} images {'x'.join(map(str, data.image_shape))}; batch {args.batch_size}; "
          f"device {device}; {args.workers} DataLoader workers; {torch.get_num_threads()} torch threads")

    def forever_device() -> Iterator:
        loader = DeviceLoader(data, args.batch_size, device=device, seed=0, flip=True)
        epoch = 0
        while True:
            yield from loader.iterate(epoch)
            epoch += 1

    def forever_torch() -> Iterator:
        from torchvision import datasets, transforms

        transform = transforms.Compose([
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5,) * c, (0.5,) * c),  # [0, 1] -> [-1, 1]
        ])
        if args.data_root:  # torchvision's own CIFAR10 class: PIL per image, as usual
            ds: Dataset = datasets.CIFAR10(args.data_root, train=True, transform=transform)
        else:
            ds = PILImages(data.images, data.labels, transform)
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
                            pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
        while True:
            for x, y in loader:
                yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    t0 = time.perf_counter()
    device_iter = forever_device()
    next(device_iter)
    setup_s = load_s + time.perf_counter() - t0
    ours = rate(device_iter, args.batches, device)
    theirs = rate(forever_torch(), args.batches, device)
    print(f"DeviceLoader:                    {ours:9.1f} batches/s  (one-off decode and copy: {setup_s:.1f} s)")
    print(f"DataLoader + torchvision transforms: {theirs:6.1f} batches/s")
    print(f"ratio: {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
