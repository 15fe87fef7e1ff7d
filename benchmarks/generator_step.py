"""What a generator costs per training step: G's forward, backward and Adam update, per registry model, in one run.

Times only G (no D, no data), so two generators of the same size can be compared where a whole
step would hide them in D's share and the noise: e.g. ``cdcgan`` (the class enters at the input)
against ``cdcgan-cbn`` (conditional batch norm, the class scales and shifts every layer)::

    python benchmarks/generator_step.py                          # quickstart's size: 1x32x32, width 32, batch 64
    python benchmarks/generator_step.py --models cdcgan,cdcgan-cbn --shape 1,28,28 --repeats 5

The models run alternately (A B A B ...), each round the same number of steps on the same noise
and labels; the median per model is kept and printed with its ratio to the first model. CPU
defaults as in training: channels-last on the CPU, fused Adam.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gan_edu.models import build_gan


def make_step(name: str, shape: tuple[int, int, int], width: int, batch: int, device: torch.device, channels_last: bool):
    """One G update of model ``name`` (forward, a stand-in loss, backward, Adam), as a closure."""
    torch.manual_seed(0)
    g, _ = build_gan(name, image_shape=shape, num_classes=10, g_channels=width, d_channels=width)
    g = g.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = torch.optim.Adam(g.parameters(), 5e-4, betas=(0.5, 0.999), fused=True)
    z = torch.randn(batch, g.config.latent_dim, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        g(z, labels).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cdcgan,cdcgan-cbn", help="comma-separated registry names (conditional generators)")
    p.add_argument("--shape", default="1,32,32", help="C,H,W (default: quickstart's)")
    p.add_argument("--width", type=int, default=32, help="g_channels (default: quickstart's 32)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=60, help="timed steps per model per round")
    p.add_argument("--repeats", type=int, default=3, help="rounds (the models alternate within each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="default: on for the CPU, as in training")
    args = p.parse_args()
    device = torch.device(args.device)
    channels_last = device.type == "cpu" if args.channels_last is None else args.channels_last
    shape = tuple(int(x) for x in args.shape.split(","))
    names = args.models.split(",")
    steps = {n: make_step(n, shape, args.width, args.batch_size, device, channels_last) for n in names}
    for step in steps.values():  # warm-up: allocations, oneDNN's kernels
        for _ in range(5):
            step()
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for n in names:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(args.steps):
                steps[n]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[n].append((time.perf_counter() - t) / args.steps * 1000)
    print(f"G's forward + backward + Adam, {shape} batch {args.batch_size}, width {args.width}, {device}, "
          f"channels-last {channels_last}, torch threads {torch.get_num_threads()}, median of {args.repeats} x {args.steps} steps")
    first = statistics.median(times[names[0]])
    for n in names:
        ms = statistics.median(times[n])
        print(f"  {n:16s} {ms:7.2f} ms  ({ms / first:.2f}x {names[0]})  rounds: {', '.join(f'{t:.1f}' for t in times[n])}")


if __name__ == "__main__":
    main()
