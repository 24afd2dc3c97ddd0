"""What the source's recurrent dropout would cost our RNN members: fused LSTM vs a step loop.

    uv run python -m mnistlab.bench packages/rmdl/benchmarks/recurrent_dropout.py

The source's image RNN (kk7nc/RMDL `BuildModel.py`) uses Keras LSTMs with recurrent dropout
0.05: one dropout mask per sequence on the hidden state fed back at every time step. Torch's
fused `nn.LSTM` has no such option, so our members leave it out (README, Deviations). Adding it
means running the recurrence step by step (`nn.LSTMCell`), which this measures: a training step
(forward, backward) of an RNN member's two LSTMs (28 rows of 28 pixels, then the 28 row
encodings) at batch 128, fused against the step loop with recurrent dropout, in turns in one
process (--repeats rounds of --steps steps), for the `cpu` budget's widest member (32 units)
and the code's widest (127). It prints the median ms/step and the loop's cost as a ratio.
Whether the dropout changes accuracy is not measured here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

BATCH, SIZE = 128, 28
RECURRENT_DROPOUT = 0.05


def fused_step(units: int) -> Callable[[], None]:
    rows, image = nn.LSTM(1, units, batch_first=True), nn.LSTM(units, units, batch_first=True)
    images = torch.rand(BATCH, SIZE, SIZE)

    def step() -> None:
        _, (encoded, _) = rows(images.reshape(BATCH * SIZE, SIZE, 1))
        _, (last, _) = image(encoded[-1].reshape(BATCH, SIZE, units))
        last.sum().backward()

    return step


def unrolled(cell: nn.LSTMCell, sequence: torch.Tensor) -> torch.Tensor:
    """The last hidden state, with one recurrent-dropout mask per sequence (as Keras)."""
    batch = sequence.shape[0]
    h = sequence.new_zeros(batch, cell.hidden_size)
    c = torch.zeros_like(h)
    keep = (torch.rand_like(h) > RECURRENT_DROPOUT).float() / (1 - RECURRENT_DROPOUT)
    for t in range(sequence.shape[1]):
        h, c = cell(sequence[:, t], (h * keep, c))
    return h


def loop_step(units: int) -> Callable[[], None]:
    rows, image = nn.LSTMCell(1, units), nn.LSTMCell(units, units)
    images = torch.rand(BATCH, SIZE, SIZE)

    def step() -> None:
        encoded = unrolled(rows, images.reshape(BATCH * SIZE, SIZE, 1))
        unrolled(image, encoded.reshape(BATCH, SIZE, units)).sum().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds, each way in turn")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"RNN member step (two LSTMs, batch {BATCH}), {torch.get_num_threads()} threads, "
        f"{args.repeats} rounds of {args.steps} steps, median ms/step"
    )
    print("| units | fused nn.LSTM (ours) | step loop + recurrent dropout | loop / fused |")
    print("|---|---|---|---|")
    for units in (32, 127):
        ways = {"fused": fused_step(units), "loop": loop_step(units)}
        times: dict[str, list[float]] = {way: [] for way in ways}
        for step in ways.values():
            step()  # warm-up
        for _ in range(args.repeats):
            for way, step in ways.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[way].append(1000 * (time.perf_counter() - started) / args.steps)
        fused, loop = statistics.median(times["fused"]), statistics.median(times["loop"])
        print(f"| {units} | {fused:.1f} | {loop:.1f} | {loop / fused:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
