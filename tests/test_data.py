"""The built-in shapes data set and the device-resident loader."""

from __future__ import annotations

import pytest
import torch

from gan_edu.data import SHAPE_CLASSES, DeviceLoader, load_dataset, make_shapes
from gan_edu.errors import GanEduError


def test_shapes_are_deterministic_balanced_and_uint8():
    a, la = make_shapes(50, seed=4)
    b, lb = make_shapes(50, seed=4)
    c, _ = make_shapes(50, seed=5)
    assert a.dtype == torch.uint8 and a.shape == (50, 3, 32, 32)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert torch.bincount(la).tolist() == [5] * 10
    assert len(SHAPE_CLASSES) == 10 and len(set(SHAPE_CLASSES)) == 10


def test_shapes_vary_and_contrast():
    images, labels = make_shapes(200, seed=0)
    x = images.float()
    # every image has a visible shape: strong contrast inside the image
    assert (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)) > 80).all()
    # colours vary between images of one class
    circles = x[labels == 0].mean(dim=(2, 3))
    assert circles.std(dim=0).min() > 20


def test_shapes_classes_differ_in_shape():
    """The mean mask of each class differs: a classifier has something to learn."""
    images, labels = make_shapes(1000, seed=1, channels=1)
    edges = (images.float()[:, 0, 1:, :] - images.float()[:, 0, :-1, :]).abs().mean(dim=(1, 2))
    means = torch.stack([edges[labels == c].mean() for c in range(10)])
    assert means.std() > 0.1  # edge density differs between classes


def test_grey_option_and_registry():
    ds = load_dataset("shapes", "test", n=30, channels=1)
    assert ds.image_shape == (1, 32, 32) and ds.num_classes == 10 and len(ds) == 30
    assert ds.class_counts() == [3] * 10
    train = load_dataset("shapes", "train", n=30)
    assert not torch.equal(train.images, load_dataset("shapes", "test", n=30).images)
    with pytest.raises(GanEduError, match="dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(GanEduError, match="split 'val'"):
        load_dataset("shapes", "val")


def test_subset_keeps_only_those_classes(tiny_shapes):
    sub = tiny_shapes.subset([2, 5])
    assert set(sub.labels.tolist()) == {2, 5}
    with pytest.raises(GanEduError, match="class 12"):
        tiny_shapes.subset([12])


def test_loader_batches_are_in_range_deterministic_and_cover_the_epoch(tiny_shapes):
    loader = DeviceLoader(tiny_shapes, 16, seed=1)
    batches = list(loader.iterate(0))
    assert len(batches) == len(loader) == 4
    x, y = batches[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)
    assert x.min() >= -1 and x.max() <= 1
    again = list(DeviceLoader(tiny_shapes, 16, seed=1).iterate(0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    # one epoch sees every image once
    seen = torch.cat([b[1] for b in batches]).sort().values
    assert torch.equal(seen, tiny_shapes.labels.sort().values)
    # another epoch, another order; resuming mid-epoch gives the same remaining batches
    assert not torch.equal(list(loader.iterate(1))[0][0], x)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(list(loader.iterate(1))[2:], loader.iterate(1, start=2)))


def test_loader_flip(tiny_shapes):
    plain = next(DeviceLoader(tiny_shapes, 64, seed=2, shuffle=False).iterate(0))[0]
    flipped = next(DeviceLoader(tiny_shapes, 64, seed=2, shuffle=False, flip=True).iterate(0))[0]
    same = (plain == flipped).flatten(1).all(1)
    mirrored = (plain.flip(-1) == flipped).flatten(1).all(1)
    assert (same | mirrored).all() and mirrored.sum() > 10 and same.sum() > 10


def test_loader_rejects_a_batch_larger_than_the_data(tiny_shapes):
    with pytest.raises(GanEduError, match="batch_size=100"):
        DeviceLoader(tiny_shapes, 100)
