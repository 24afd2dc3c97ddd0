from __future__ import annotations

import torch

from mnistlab.batches import BatchSource, Normalisation, eval_indices, random_translate
from mnistlab.data import Split


def numbered_split(n: int) -> Split:
    """Images whose every pixel holds the sample's id (mod 256); labels hold the id."""
    ids = torch.arange(n)
    images = (ids % 256).to(torch.uint8)[:, None, None, None].expand(n, 1, 28, 28).clone()
    return Split(images, ids)


def test_training_shards_are_disjoint_equal_and_cover_all_but_the_remainder() -> None:
    split, world = numbered_split(1003), 4
    shards = [
        torch.cat(
            [
                labels
                for _, labels in BatchSource(
                    split, 64, seed=7, rank=rank, world_size=world
                ).train_epoch(epoch=2)
            ]
        )
        for rank in range(world)
    ]
    assert {len(s) for s in shards} == {1003 // world}
    seen = torch.cat(shards)
    assert len(set(seen.tolist())) == len(seen) == 1003 - 1003 % world
    steps = {BatchSource(split, 64, rank=r, world_size=world).steps_per_epoch() for r in range(4)}
    assert steps == {4}  # ranks agree on the number of steps without talking


def test_order_depends_on_seed_and_epoch_only() -> None:
    split = numbered_split(300)
    order = lambda seed, epoch: torch.cat(  # noqa: E731
        [y for _, y in BatchSource(split, 50, seed=seed).train_epoch(epoch)]
    )
    assert torch.equal(order(1, 0), order(1, 0))
    assert not torch.equal(order(1, 0), order(1, 1))
    assert not torch.equal(order(1, 0), order(2, 0))
    assert sorted(order(1, 3).tolist()) == list(range(300))


def test_images_are_normalised_once_and_match_their_labels() -> None:
    split = numbered_split(300)
    source = BatchSource(split, 32, norm=Normalisation(0.5, 0.25))
    images, labels = next(source.train_epoch(0))
    expected = ((labels % 256).float() / 255 - 0.5) / 0.25
    assert torch.allclose(images[:, 0, 5, 5], expected)


def test_translation_moves_each_image_by_its_own_offset_and_fills_background() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10, 12] = 1.0
    batch = image.expand(512, 1, 28, 28)
    shifted = random_translate(batch, 2, -1.0, torch.Generator().manual_seed(0))
    assert shifted.shape == batch.shape
    positions = (shifted[:, 0] == 1.0).nonzero()[:, 1:] - torch.tensor([10, 12])
    assert positions.abs().max() <= 2
    assert len({tuple(p) for p in positions.tolist()}) == 25  # all offsets occur
    assert (shifted[:, 0, :2, :] == -1.0).any()  # borders come in with the fill value


def test_augmentation_runs_on_the_source_device_and_is_reproducible() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    split = numbered_split(256)
    first = BatchSource(split, 64, device, translate=2, seed=3)
    second = BatchSource(split, 64, device, translate=2, seed=3)
    a, _ = next(first.train_epoch(0))
    b, _ = next(second.train_epoch(0))
    assert a.device.type == device and torch.equal(a, b)
    other_rank = BatchSource(split, 64, device, translate=2, seed=3, rank=1, world_size=2)
    assert next(other_rank.train_epoch(0))[0].device.type == device


def test_evaluation_shards_cover_every_sample_exactly_once() -> None:
    n, world = 1001, 3
    covered = []
    for rank in range(world):
        index, valid = eval_indices(n, rank, world)
        assert len(index) == -(-n // world)
        covered += index[valid].tolist()
    assert sorted(covered) == list(range(n))
