"""SimCLR reads named tfds datasets from the data dir (never downloading), each process its shard."""
import os

import pytest

from rl_repr.core import runner
from rl_repr.data.images import sources as image_data
from simclr_tiny import tiny_simclr_config
from test_tfds_images import FIXED, RlReprTestFixedImages


def test_missing_dataset_stops_before_compiling_with_the_command_that_prepares_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build cifar10"):
        runner.build(tiny_simclr_config(dataset="cifar10", data_dir=str(tmp_path)))
    assert not os.listdir(tmp_path)  # nothing downloaded or created


def test_trains_and_evaluates_on_a_prepared_tfds_dataset(tmp_path):
    data_dir = str(tmp_path / "tfds")
    RlReprTestFixedImages(data_dir=data_dir).download_and_prepare()
    config = tiny_simclr_config(dataset=FIXED, data_dir=data_dir, batch_size=8, knn_k=3)
    assert image_data.is_process_shard(config)
    results = runner.run("simclr", config, str(tmp_path / "run"))
    assert results["steps"] == 1  # 10 training images, batch 8
    assert 0.0 <= results["linear_probe_accuracy"] <= 1.0
