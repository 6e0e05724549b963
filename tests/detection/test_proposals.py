"""Selective-search proposals (Uijlings et al. 2013, R-CNN §2.1): cached per dataset and settings, recall on scenes."""

import pytest
import torch

from cnnlab.data import load_dataset
from cnnlab.detection import proposals as P
from cnnlab.errors import ConfigError

pytest.importorskip("cv2", reason="selective search needs the detect extra (OpenCV contrib)")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return load_dataset("fashion-scenes:n_test=24", "test", data_dir=tmp_path_factory.mktemp("scenes"))


def test_proposals_are_cached_and_a_second_call_reads_them(scenes, tmp_path, monkeypatch):
    settings = P.ProposalSettings(mode="fast", max_proposals=30, min_size=6)
    first, info = P.proposals_for(scenes.images[:6], settings, cache_dir=tmp_path)
    assert not info["cached"] and len(first) == 6 and [str(p) for p in tmp_path.iterdir()] == [info["cache"]]
    assert all(b.shape[1] == 4 and 0 < len(b) <= 30 for b in first)
    sizes = torch.cat(first)
    assert ((sizes[:, 2:] - sizes[:, :2]) >= 6).all() and (sizes >= 0).all() and (sizes <= 128).all()

    def refuse(*args, **kwargs):
        raise AssertionError("selective search ran although the proposals are cached")

    monkeypatch.setattr(P, "selective_search", refuse)
    again, info2 = P.proposals_for(scenes.images[:6], settings, cache_dir=tmp_path)
    assert info2["cached"] and all(torch.equal(a, b) for a, b in zip(first, again))
    # other settings or other images are another cache entry (and here would have to run selective search)
    with pytest.raises(AssertionError, match="cached"):
        P.proposals_for(scenes.images[:6], P.ProposalSettings(max_proposals=31, min_size=6), cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="cached"):
        P.proposals_for(scenes.images[1:7], settings, cache_dir=tmp_path)


def test_recall_of_the_truth_boxes_on_scenes(scenes, tmp_path):
    props, _ = P.proposals_for(scenes.images, P.ProposalSettings(), cache_dir=tmp_path)
    # measured: 1.00 at IoU 0.5 on 100 test scenes (~37 proposals per scene); the trivial baseline,
    # one whole-image box per scene, covers under a quarter of the items
    assert P.proposal_recall(props, scenes.boxes, 0.5) >= 0.95
    whole = [torch.tensor([[0.0, 0.0, 128.0, 128.0]])] * len(scenes)
    assert P.proposal_recall(whole, scenes.boxes, 0.5) < 0.25
    assert P.proposal_recall([torch.zeros(0, 4)] * 2, [torch.zeros(0, 4)] * 2) == 1.0


def test_grayscale_and_rgb_images_and_bad_settings():
    img = torch.zeros(1, 40, 40, dtype=torch.uint8)
    img[:, 10:30, 5:25] = 200
    boxes = P.selective_search(img)
    assert (torch.tensor([[5.0, 10.0, 25.0, 30.0]]) == boxes).all(1).any()  # the square's own box is proposed
    assert torch.equal(P.selective_search(img.expand(3, -1, -1).contiguous()), boxes)
    with pytest.raises(ConfigError, match="mode"):
        P.ProposalSettings(mode="slow")
    with pytest.raises(ConfigError, match="uint8"):
        P.selective_search(torch.zeros(1, 8, 8))


def test_fast_rcnn_selective_search_proposer_gives_rcnns_proposals_once_per_image(scenes, monkeypatch):
    settings = P.ProposalSettings(mode="fast", max_proposals=30, min_size=6)
    rcnn, _ = P.proposals_for(scenes.images[:4], settings, cache_dir=None)  # what R-CNN / SPPNet use
    proposer = P.SelectiveSearchProposals(settings)
    mean, std = torch.tensor(scenes.mean).view(1, -1, 1, 1), torch.tensor(scenes.std).view(1, -1, 1, 1)
    x = (scenes.images[:4].float() / 255 - mean) / std
    with pytest.raises(ConfigError, match="set_normalization"):
        proposer(x)
    proposer.set_normalization(scenes.mean, scenes.std)
    assert all(torch.equal(a, b) for a, b in zip(proposer(x), rcnn, strict=True))

    def refuse(*a, **k):
        raise AssertionError("selective search ran again for an image it has seen")

    monkeypatch.setattr(P, "selective_search", refuse)
    assert all(torch.equal(a, b) for a, b in zip(proposer(x.flip(0)), rcnn[::-1], strict=True))


def test_fast_rcnn_trains_and_predicts_on_selective_search_proposals(tmp_path):
    from cnnlab.detection.task import DetectionTask
    from cnnlab.models import create_model
    from cnnlab.train import TrainConfig, fit, load_checkpoint

    data = "fashion-scenes:size=64,max_items=2,n_train=16,n_test=8"
    kwargs = {"widths": [16, 16, 32, 32], "proposals": {"min_size": 6, "max_proposals": 50}}
    r = fit(TrainConfig(task="detection", model="fast_rcnn_fastnet", model_kwargs=kwargs, data=data,
                        data_dir=str(tmp_path), epochs=1, batch_size=8, optimizer="adam", lr=2e-3, threads=1,
                        progress="none", plots=False, tensorboard=False, out_dir=str(tmp_path / "run")))
    assert r.final["n_images"] == 8 and 0 <= r.final["map_50"] <= 1 and r.final["ms_per_image"] > 0
    model = DetectionTask().model_from_checkpoint(load_checkpoint(r.run_dir))
    assert isinstance(model.proposer, P.SelectiveSearchProposals) and model.proposer.mean is not None
    test = load_dataset(data, "test", data_dir=tmp_path)
    x = (test.images.float() / 255 - test.mean[0]) / test.std[0]
    assert len(model.eval()(x)) == 8
    with pytest.raises(ValueError, match="Fast R-CNN option"):
        create_model("faster_rcnn_fastnet", proposals="selective-search")


def test_selective_search_is_a_function_of_the_image(scenes):
    """The same image gives the same ranked proposals whatever ran before (OpenCV ranks with C's rand())."""
    settings = P.ProposalSettings(mode="fast", max_proposals=20, min_size=6)
    first = P.selective_search(scenes.images[0], settings)
    P.selective_search(scenes.images[1], settings)
    assert torch.equal(P.selective_search(scenes.images[0], settings), first)
