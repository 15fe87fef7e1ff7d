"""The real data sets, from small files in their real on-disk formats, through the user's code path.

Nothing here touches the network: the download tests replace urllib and the Google Drive
downloader with functions that fail as an offline machine does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from formats import (
    CIFAR_CLASSES,
    tar_cifar10,
    write_celeba_jpegs,
    write_celeba_torchvision,
    write_cifar10,
    write_image_tree,
    write_mnist,
)
from PIL import Image

from gan_edu.data import (
    DATASETS,
    DeviceLoader,
    FileLoader,
    ImageDataset,
    ImageFiles,
    load_dataset,
    make_loader,
)
from gan_edu.errors import GanEduError
from gan_edu.training import GANTrainerConfig
from gan_edu.training.runs import new_gan_run, resume_gan_run

TINY = {"g_channels": 4, "d_channels": 4}


def cfg(**kw):
    return GANTrainerConfig(**{"progress": False, "log_every": 2, "seed": 5, **kw})


def weights(trainer):
    return {f"{n}.{k}": v.clone() for n, m in trainer.modules().items() for k, v in m.state_dict().items()}


@pytest.fixture
def offline(monkeypatch):
    """Every download fails as on a machine without network."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr("torchvision.datasets.celeba.download_file_from_google_drive", refuse)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_the_registry_has_every_set():
    assert set(DATASETS) == {"shapes", "mnist", "fashion-mnist", "cifar10", "celeba", "folder"}


# -- CIFAR-10 ---------------------------------------------------------------------------------
def test_cifar10_pickles(tmp_path):
    rows = write_cifar10(tmp_path)
    train = load_dataset("cifar10", data_root=tmp_path, download=False, verify_checksums=False)
    test = load_dataset("cifar10", "test", data_root=tmp_path, download=False, verify_checksums=False)
    assert isinstance(train, ImageDataset) and train.image_shape == (3, 32, 32) and train.images.dtype == torch.uint8
    assert len(train) == 50 and len(test) == 10
    assert train.class_counts() == [5] * 10 and test.class_counts() == [1] * 10
    assert list(train.class_names) == CIFAR_CLASSES
    # the pickled row is the R plane, then G, then B: the same bytes as the (C, H, W) image
    assert torch.equal(train.images[7], torch.from_numpy(rows["train"][7].reshape(3, 32, 32)))
    assert torch.equal(test.images[3], torch.from_numpy(rows["test"][3].reshape(3, 32, 32)))
    assert train.options == {"split": "train", "data_root": str(tmp_path.resolve()), "download": False, "verify_checksums": False}


def test_cifar10_checks_md5_by_default(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(GanEduError) as excinfo:
        load_dataset("cifar10", data_root=tmp_path)  # the defaults a user gets: checksums on
    message = one_line_error(excinfo)
    assert "fail torchvision's check" in message and "cifar-10-batches-py" in message


def test_cifar10_release_archive_is_unpacked(tmp_path, offline):
    write_cifar10(tmp_path / "src")
    tar_cifar10(tmp_path / "src", tmp_path / "root")
    ds = load_dataset("cifar10", "test", data_root=tmp_path / "root", verify_checksums=False)  # download on: finds the archive
    assert len(ds) == 10 and (tmp_path / "root" / "cifar-10-batches-py" / "data_batch_5").is_file()


# -- MNIST, Fashion-MNIST ---------------------------------------------------------------------
@pytest.mark.parametrize(("name", "folder", "gz"), [("mnist", "MNIST", False), ("mnist", "MNIST", True), ("fashion-mnist", "FashionMNIST", False)])
def test_mnist_idx_files(tmp_path, name, folder, gz):
    images = write_mnist(tmp_path, folder, gz=gz)
    train = load_dataset(name, data_root=tmp_path, download=False)
    test = load_dataset(name, "test", data_root=tmp_path, download=False)
    assert train.image_shape == (1, 28, 28) and len(train) == 20 and len(test) == 10
    assert train.class_counts() == [2] * 10 and train.num_classes == 10
    assert torch.equal(train.images[5, 0], torch.from_numpy(images["train"][5]))
    assert torch.equal(test.images[9, 0], torch.from_numpy(images["t10k"][9]))
    assert train.class_names[0] == ("0" if name == "mnist" else "T-shirt/top")


# -- CelebA -----------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["celeba/img_align_celeba", "img_align_celeba"])
def test_celeba_jpeg_folder(tmp_path, where):
    write_celeba_jpegs(tmp_path / where)
    train = load_dataset("celeba", data_root=tmp_path, download=False, size=16)
    test = load_dataset("celeba", "test", data_root=tmp_path, download=False, size=16)
    assert isinstance(train, ImageFiles) and len(train) == 4 and len(test) == 2  # 162771 is "valid": in neither
    assert train.image_shape == (3, 16, 16) and train.class_names == ("face",) and train.class_counts() == [4]
    x, label = train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and label == 0
    # centre crop 178x178 first: the red bands above and below the square are cut away
    assert x[0].float().mean() < 40 and x[2].float().mean() > 190


def test_celeba_torchvision_layout_uses_the_partition_file(tmp_path):
    write_celeba_torchvision(tmp_path, {1: 0, 2: 2, 3: 0, 4: 1, 5: 2})  # torchvision needs 2+ images a split
    train = load_dataset("celeba", data_root=tmp_path, download=False, verify_checksums=False, size=8)
    test = load_dataset("celeba", "test", data_root=tmp_path, download=False, verify_checksums=False, size=8)
    assert [p.rsplit("/", 1)[-1] for p in train.paths] == ["000001.jpg", "000003.jpg"]
    assert [p.rsplit("/", 1)[-1] for p in test.paths] == ["000002.jpg", "000005.jpg"]
    with pytest.raises(GanEduError) as excinfo:  # the defaults a user gets check the list files' md5
        load_dataset("celeba", data_root=tmp_path, download=False)
    assert "fail torchvision's check" in one_line_error(excinfo)


def test_celeba_in_memory(tmp_path):
    write_celeba_jpegs(tmp_path / "img_align_celeba")
    files = load_dataset("celeba", data_root=tmp_path, size=8)
    memory = load_dataset("celeba", data_root=tmp_path, size=8, in_memory=True)
    assert isinstance(memory, ImageDataset) and memory.images.shape == (4, 3, 8, 8)
    assert torch.equal(memory.images[2], files[2][0])


# -- a folder of images -----------------------------------------------------------------------
def test_folder_with_class_subfolders(tmp_path):
    write_image_tree(tmp_path / "pets")
    ds = load_dataset("folder", data_root=tmp_path / "pets", size=16, in_memory=False)
    assert isinstance(ds, ImageFiles) and ds.class_names == ("cat", "dog") and ds.class_counts() == [3, 2]
    images = torch.stack([ds[i][0] for i in range(len(ds))])  # (5, 3, 16, 16): sizes and modes made alike
    assert images.shape == (5, 3, 16, 16)
    assert images[0, 0].float().mean() > 190 and images[3, 2].float().mean() > 190  # the red cat, the blue dog
    memory = load_dataset("folder", data_root=tmp_path / "pets", size=16)  # small: decoded into memory
    assert isinstance(memory, ImageDataset) and torch.equal(memory.images, images)
    grey = load_dataset("folder", data_root=tmp_path / "pets", size=8, channels=1)
    assert grey.image_shape == (1, 8, 8)
    with pytest.raises(GanEduError, match="no 'test' split") as excinfo:
        load_dataset("folder", "test", data_root=tmp_path / "pets")
    one_line_error(excinfo)


def test_folder_flat_and_split(tmp_path):
    for i in range(3):
        Image.new("RGB", (10 + i, 12), (i * 50, 0, 0)).save(tmp_path / f"img{i}.png")
    flat = load_dataset("folder", data_root=tmp_path, size=8)
    assert flat.class_names == (tmp_path.name,) and len(flat) == 3
    split = tmp_path / "split"
    write_image_tree(split / "train")
    write_image_tree(split / "test")
    test = load_dataset("folder", "test", data_root=split, size=8)
    assert test.class_names == ("cat", "dog") and len(test) == 5 and test.options["split"] == "test"


def test_folder_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for kwargs, expected in [
        ({}, "no data_root"),
        ({"data_root": tmp_path / "nothing"}, "is not a folder"),
        ({"data_root": tmp_path / "empty"}, "no images in"),
    ]:
        with pytest.raises(GanEduError, match=expected) as excinfo:
            load_dataset("folder", **kwargs)
        one_line_error(excinfo)


def test_a_broken_image_file_is_one_line(tmp_path):
    write_image_tree(tmp_path)
    (tmp_path / "dog" / "c.jpg").write_bytes(b"not a jpeg")
    files = load_dataset("folder", data_root=tmp_path, size=8, in_memory=False)
    with pytest.raises(GanEduError, match="c.jpg: not a readable image") as excinfo:
        list(FileLoader(files, 2, num_workers=1, shuffle=False).iterate(0))
    one_line_error(excinfo)


# -- missing data -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10", "cifar-10-batches-py/"),
        ("mnist", "MNIST/raw/"),
        ("fashion-mnist", "FashionMNIST/raw/"),
        ("celeba", "celeba/img_align_celeba/000001.jpg"),
    ],
)
@pytest.mark.parametrize("download", [False, True])
def test_missing_data_says_what_to_put_where_in_one_line(tmp_path, offline, name, expected, download):
    with pytest.raises(GanEduError) as excinfo:
        load_dataset(name, data_root=tmp_path, download=download)
    message = one_line_error(excinfo)
    assert f"{tmp_path.resolve()}/{expected}" in message
    assert ("download failed" in message and "offline" in message) if download else "download is off" in message


def test_unknown_options_and_classes(tmp_path):
    with pytest.raises(GanEduError, match="option 'size' of dataset 'mnist': expected one of data_root, download"):
        load_dataset("mnist", size=32)
    write_mnist(tmp_path)
    sub = load_dataset("mnist", data_root=tmp_path, classes=[3, 7])
    assert sub.class_counts() == [0, 0, 0, 2, 0, 0, 0, 2, 0, 0] and sub.options["classes"] == [3, 7]


# -- loaders ------------------------------------------------------------------------------------
@pytest.fixture
def pets(tmp_path):
    write_image_tree(tmp_path)
    return load_dataset("folder", data_root=tmp_path, size=8, in_memory=False)


def test_file_loader_matches_the_device_loader(pets):
    memory = pets.load(num_workers=0)
    for flip in (False, True):
        files = FileLoader(pets, 2, seed=3, flip=flip, num_workers=0)
        device = DeviceLoader(memory, 2, seed=3, flip=flip)
        assert len(files) == len(device) == 2
        for epoch in (0, 1):
            for (xf, yf), (xd, yd) in zip(files.iterate(epoch), device.iterate(epoch), strict=True):
                assert torch.equal(xf, xd) and torch.equal(yf, yd)
                assert xf.dtype == torch.float32 and -1 <= xf.min() and xf.max() <= 1


@pytest.mark.slow  # loader worker processes
def test_file_loader_workers_and_resume_mid_epoch(pets):
    loader = FileLoader(pets, 2, seed=1, drop_last=False, num_workers=2)
    batches = list(loader.iterate(4))
    assert [len(y) for _, y in batches] == [2, 2, 1]
    in_process = list(FileLoader(pets, 2, seed=1, drop_last=False, num_workers=0).iterate(4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, in_process, strict=True))
    resumed = list(loader.iterate(4, start=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches[1:], resumed, strict=True))


def test_make_loader_picks_by_kind(pets):
    assert isinstance(make_loader(pets, 2), FileLoader)
    assert isinstance(make_loader(pets.load(num_workers=0), 2), DeviceLoader)
    with pytest.raises(GanEduError, match="training data of type list"):
        make_loader([1, 2], 2)  # type: ignore[arg-type]


def test_balanced_sampling_evens_out_the_classes():
    labels = torch.tensor([0] * 90 + [1] * 10)
    data = ImageDataset("toy", torch.zeros(100, 1, 4, 4, dtype=torch.uint8), labels, ("many", "few"))
    plain = torch.cat([y for _, y in DeviceLoader(data, 10, seed=0).iterate(0)])
    balanced = torch.cat([y for e in range(4) for _, y in DeviceLoader(data, 10, seed=0, balanced=True).iterate(e)])
    assert plain.bincount().tolist() == [90, 10]
    few = balanced.bincount()[1].item() / len(balanced)
    assert 0.4 < few < 0.6
    again = torch.cat([y for _, y in DeviceLoader(data, 10, seed=0, balanced=True).iterate(2)])
    assert torch.equal(again, balanced[200:300])  # deterministic per (seed, epoch)


@pytest.mark.slow  # three runs from image files
def test_trainer_on_files_resumes_exactly(tmp_path):
    """CelebA on disk: the Trainer takes a FileLoader, records the data options, and resumes mid-epoch exactly."""
    write_celeba_jpegs(tmp_path / "data" / "img_align_celeba", tuple(range(1, 9)))
    data = load_dataset("celeba", data_root=tmp_path / "data", size=8, download=False)
    straight = new_gan_run("dcgan", data, config=cfg(epochs=1, batch_size=2, flip=True), out_dir=tmp_path / "a", **TINY)
    assert isinstance(straight.make_loader(data), FileLoader)
    straight.fit(data)
    part = new_gan_run("dcgan", data, config=cfg(epochs=1, batch_size=2, flip=True, max_steps=3), out_dir=tmp_path / "b", **TINY)
    part.fit(data)
    resumed, reloaded = resume_gan_run(tmp_path / "b", max_steps=None)
    assert isinstance(reloaded, ImageFiles) and reloaded.paths == data.paths and reloaded.options == data.options
    resumed.fit(reloaded)
    assert resumed.step == straight.step == 4
    for key, value in weights(straight).items():
        assert torch.equal(value, weights(resumed)[key]), key
    recorded = json.loads((tmp_path / "b" / "config.json").read_text())["data"]
    assert recorded == {"name": "celeba", "options": data.options, "class_names": ["face"], "size": 8}
    assert recorded["options"]["data_root"] == str((tmp_path / "data").resolve())


def test_images_of_different_loaders_are_normalised_alike(tmp_path):
    rows = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", data_root=tmp_path, download=False, verify_checksums=False)
    x, _ = next(DeviceLoader(ds, 50, shuffle=False).iterate(0))
    expected = torch.from_numpy(rows["train"].reshape(50, 3, 32, 32).astype(np.float32)) / 127.5 - 1
    assert torch.allclose(x, expected)


# -- the command line ---------------------------------------------------------------------------
def test_cli_data_info(tmp_path, capsys):
    from gan_edu.cli import main

    write_mnist(tmp_path / "root")
    assert main(["data", "info", "--dataset", "mnist", "--data-root", str(tmp_path / "root"), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "train: 20 images of shape 1x28x28, 10 classes" in out and "test: 10 images of shape 1x28x28" in out
    assert out.count("  0          2") == 1 and out.count("  9          1") == 1
    write_image_tree(tmp_path / "pets")
    assert main(["data", "info", "--dataset", "folder", "--data-root", str(tmp_path / "pets"), "--image-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "train: 5 images of shape 3x8x8, 2 classes" in out and "test: none (folder:" in out


@pytest.mark.slow  # CLI runs on MNIST-format files
def test_cli_train_and_resume_on_mnist_files(tmp_path, capsys):
    from gan_edu.cli import main

    write_mnist(tmp_path / "root", n_train=16)
    run = tmp_path / "run"
    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "root"), "--no-download", "--out", str(run),
            "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--g-channels", "4", "--d-channels", "4", "--no-progress"]
    assert main(argv) == 0
    assert "training dcgan on mnist (16 images)" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--no-progress"]) == 0
    assert "done: 3 steps, 0 epochs" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["data", "info", "--dataset", "cifar10", "--no-download"], ["train", "--dataset", "celeba", "--no-download"]])
def test_cli_missing_data_is_one_line_and_exit_2(tmp_path, capsys, argv):
    from gan_edu.cli import main

    assert main([*argv, "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gan-edu: error: ") and "not found and download is off; put" in err
