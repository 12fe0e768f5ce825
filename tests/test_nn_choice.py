"""Choice modules and ChoiceSupernet: a user's model family as one weight-sharing supernet."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from ray_nasrank.nn import (
    ChoiceSupernet,
    DepthChoice,
    OpChoice,
    SlimBatchNorm1d,
    SlimBatchNorm2d,
    SlimConv2d,
    SlimLinear,
    ValueChoice,
    WidthChoice,
    skip_choice,
)
from ray_nasrank.nn._choice import SLIM_LAYERS


class Block(nn.Module):
    """A residual block whose activation is a ValueChoice read in forward."""

    def __init__(self, w: WidthChoice, act: ValueChoice) -> None:
        super().__init__()
        self.conv = SlimConv2d(w, w, 3, padding=1, bias=False)
        self.bn = SlimBatchNorm2d(w)
        self.act = act

    def forward(self, x):
        h = self.bn(self.conv(x))
        return x + (torch.relu(h) if self.act.value == "relu" else nn.functional.gelu(h))


def family(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    w1, w2 = WidthChoice("w1", [4, 8]), WidthChoice("w2", [8, 12])
    act = ValueChoice("act", ["relu", "gelu"])
    return nn.Sequential(
        SlimConv2d(in_channels, w1, 3, padding=1, bias=False), SlimBatchNorm2d(w1), nn.ReLU(inplace=True),
        OpChoice({"conv3": nn.Sequential(SlimConv2d(w1, w1, 3, padding=1, bias=False), SlimBatchNorm2d(w1), nn.ReLU()),
                  "conv1": nn.Sequential(SlimConv2d(w1, w1, 1, bias=False), SlimBatchNorm2d(w1), nn.ReLU()),
                  "pool": nn.MaxPool2d(3, 1, 1)}, label="op"),
        SlimConv2d(w1, w2, 3, stride=2, padding=1), SlimBatchNorm2d(w2), nn.ReLU(),
        DepthChoice([Block(w2, act) for _ in range(2)], label="depth", depths=(0, 1, 2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        skip_choice(nn.Sequential(SlimLinear(w2, w2), SlimBatchNorm1d(w2), nn.ReLU()), label="mlp"),
        nn.Dropout(0.2), SlimLinear(w2, num_classes))


@pytest.fixture()
def sn():
    torch.manual_seed(0)
    return ChoiceSupernet(family())


def _train_bn_stats(sn, x):
    # give every BN non-trivial running statistics (recalibration-like) so eval mode is a real test
    with torch.no_grad():
        sn.train()
        for config in [sn.widest(), *(sn.space.sample(i) for i in range(6))]:
            sn(x, config)


def test_space_labels_and_param_space(sn):
    assert sn.plain_space() == {"w1": [4, 8], "op": ["conv3", "conv1", "pool"], "w2": [8, 12],
                                "act": ["relu", "gelu"], "depth": [0, 1, 2], "mlp": [0, 1]}
    assert sn.space.size == 2 * 3 * 2 * 2 * 3 * 2
    pytest.importorskip("ray")
    ps = sn.param_space({"lr": 0.1})
    assert list(ps) == ["lr", "w1", "op", "w2", "depth", "act", "mlp"]
    assert ps["lr"] == 0.1 and list(ps["op"].categories) == ["conv3", "conv1", "pool"]
    with pytest.raises(ValueError, match=r"choice label\(s\) \['depth'\] clash with key\(s\) of the param_space"):
        sn.param_space({"depth": 3})


def test_extracted_subnet_equals_supernet_path(sn):
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    _train_bn_stats(sn, x)
    configs = [dict(zip(sn.labels, values)) for values in itertools.product(*sn.plain_space().values())]
    for config in configs[::5]:
        sub = sn.extract(config)
        assert not any(isinstance(m, (OpChoice, DepthChoice, *SLIM_LAYERS)) for m in sub.modules())
        sn.eval(), sub.eval()
        torch.testing.assert_close(sn(x, config), sub(x), rtol=0, atol=1e-6)
        # train mode (dropout off so both draw nothing): BN uses batch statistics in both
        sn.train(), sub.train()
        for m in (*sn.modules(), *sub.modules()):
            if isinstance(m, nn.Dropout):
                m.eval()
        torch.testing.assert_close(sn(x, config), sub(x), rtol=0, atol=1e-6)


def test_weight_sharing_is_exact(sn):
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 10, (6,))
    narrow = {"w1": 4, "op": "conv3", "w2": 8, "act": "relu", "depth": 2, "mlp": 1}
    sub = sn.extract(narrow)
    first = sn.model[0]
    # the narrow subnet's weights are exactly the prefix slices of the shared ones
    assert torch.equal(sub[0].weight, first.weight[:4])
    assert torch.equal(sub[3][0].weight, sn.model[3].candidates["conv3"][0].weight[:4, :4])
    # one backward pass: the supernet's gradient is the subnet's on the slice and zero elsewhere
    for m in (*sn.modules(), *sub.modules()):
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    sn.train(), sub.train()
    nn.functional.cross_entropy(sn(x, narrow), y).backward()
    nn.functional.cross_entropy(sub(x), y).backward()
    torch.testing.assert_close(first.weight.grad[:4], sub[0].weight.grad, rtol=0, atol=1e-6)
    assert torch.count_nonzero(first.weight.grad[4:]) == 0
    head = sn.model[-1]
    torch.testing.assert_close(head.weight.grad[:, :8], sub[-1].weight.grad, rtol=0, atol=1e-6)
    assert torch.count_nonzero(head.weight.grad[:, 8:]) == 0
    # a step on the narrow subnet changes what the wide subnet extracts on the shared prefix
    before = sn.extract(sn.widest())[0].weight.detach().clone()
    with torch.no_grad():
        first.weight -= first.weight.grad
    after = sn.extract(sn.widest())[0].weight
    assert not torch.equal(after[:4], before[:4]) and torch.equal(after[4:], before[4:])


def test_bn_running_stats_are_sliced_in_place(sn):
    x = torch.randn(6, 1, 8, 8)
    bn = sn.model[1]
    sn.train()
    with torch.no_grad():
        sn(x, {"w1": 4, "op": "pool", "w2": 8, "act": "relu", "depth": 0, "mlp": 0})
    assert torch.count_nonzero(bn.running_mean[:4]) == 4 and torch.count_nonzero(bn.running_mean[4:]) == 0
    assert int(bn.num_batches_tracked) == 1
    sub = sn.extract({"w1": 4, "op": "pool", "w2": 8, "act": "relu", "depth": 0, "mlp": 0})
    assert torch.equal(sub[1].running_mean, bn.running_mean[:4]) and sub[1].num_features == 4


def test_reset_extract_and_value_choice_frozen(sn):
    config = {"w1": 8, "op": "conv1", "w2": 12, "act": "gelu", "depth": 1, "mlp": 0}
    torch.manual_seed(5)
    a = sn.extract(config, reset=True)
    torch.manual_seed(5)
    b = sn.extract(config, reset=True)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, sn.model[0].weight)
    assert a[7][0].act.value == "gelu"  # the ValueChoice read in forward stays fixed in the copy
    assert isinstance(a[10], nn.Identity)  # mlp skipped
    a(torch.zeros(2, 1, 8, 8))


def test_bad_configs_and_labels(sn):
    with pytest.raises(ValueError, match=r"no value for choice\(s\) \['mlp'\]"):
        sn(torch.zeros(2, 1, 8, 8), {"w1": 4, "op": "pool", "w2": 8, "act": "relu", "depth": 0})
    with pytest.raises(ValueError, match="unknown value 16 for choice 'w1'"):
        sn.extract({"w1": 16, "op": "pool", "w2": 8, "act": "relu", "depth": 0, "mlp": 0})
    with pytest.raises(ValueError, match="choice label 'w' is used twice with different candidates"):
        ChoiceSupernet(nn.Sequential(SlimLinear(4, WidthChoice("w", [2, 4])), SlimLinear(WidthChoice("w", [2, 3]), 1)))
    with pytest.raises(ValueError, match="holds no choice"):
        ChoiceSupernet(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="contains '/'"):
        WidthChoice("a/b", [1, 2])
    with pytest.raises(RuntimeError, match="choice 'w1' has no active value"):
        sn.model(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="groups=1"):
        SlimConv2d(WidthChoice("c", [2, 4]), 4, 3, groups=2)


def test_tied_labels_and_arch_tuples():
    a, b = WidthChoice("w", [2, 4]), WidthChoice("w", [2, 4])
    sn = ChoiceSupernet(nn.Sequential(SlimLinear(3, a), nn.ReLU(), SlimLinear(b, 2)))
    assert sn.labels == ("w",)
    x = torch.randn(2, 3)
    torch.testing.assert_close(sn(x, (2,)), sn.extract({"w": 2})(x))


def test_model_proxies_on_a_user_supernet(sn):
    from ray_nasrank.proxies import ModelProxies

    proxies = ModelProxies(sn.model_fn(reset=True), input_shape=(1, 8, 8), names=("params", "flops", "synflow", "naswot"))
    configs = [sn.space.to_config(a) for a in sn.space.sample_many(8, rng=0, unique=True)]
    got = proxies(configs)
    assert all(np.isfinite(v).all() for v in got.values()) and not proxies.failures
    counts = [sum(p.numel() for p in sn.extract(c).parameters()) / 1e6 for c in configs]
    np.testing.assert_allclose(got["params"], counts)


def test_spos_training_landmarks_rd_fewshot_and_weak_labels():
    from ray_nasrank.data import load_dataset
    from ray_nasrank.proxies import ModelProxies
    from ray_nasrank.supernet import (
        DistancePairSampler,
        FewShotSupernet,
        LandmarkRegularizer,
        ProxyTeacher,
        RankDistiller,
        SupernetTrainConfig,
        SupernetWeakLabels,
        UniformSampler,
        evaluate_configs,
        train_supernet,
    )

    torch.manual_seed(0)
    sn = ChoiceSupernet(family())
    data = load_dataset("digits", limit_train=256, seed=0)
    cfg = SupernetTrainConfig(epochs=1, batch_size=32, seed=0)
    space = sn.space
    hist = train_supernet(sn, data.train, cfg, sampler=UniformSampler(0, space=space))
    assert len(hist["epoch_loss"]) == 1 and np.isfinite(hist["epoch_loss"][0])
    archs = space.sample_many(4, rng=1, unique=True)
    land = LandmarkRegularizer([(a, float(i)) for i, a in enumerate(archs)], coef=1.0, space=space, rng=0)
    teacher = ProxyTeacher(ModelProxies(sn.model_fn(reset=True), input_shape=(1, 8, 8), names=("synflow",)), "synflow",
                            space)
    rd = RankDistiller(teacher, sampler=DistancePairSampler(space, min_differences=2, rng=0))
    hist = train_supernet(sn, data.train, cfg, landmark=land, distill=rd, start_epoch=1, total_epochs=3)
    assert np.isfinite(hist["epoch_loss"][0]) and len(teacher.proxies._cache) > 0
    fs = FewShotSupernet(sn, "op")
    assert len(fs.subnets) == 3 and fs.route({**sn.widest(), "op": "pool"}) == 2
    train_supernet(fs, data.train, cfg, sampler=UniformSampler(1, space=fs.space), start_epoch=2, total_epochs=3)
    configs = [space.to_config(a) for a in archs]
    calib = [data.train.x[:64]]
    evaluation = [(data.valid.x[:128], data.valid.y[:128])]
    for model in (sn, fs):
        weak = SupernetWeakLabels(model, calib, evaluation, with_loss=True)
        got = weak(configs)
        assert got["supernet_acc"].shape == (4,) and np.all((got["supernet_acc"] >= 0) & (got["supernet_acc"] <= 100))
        assert weak([configs[-1]])["supernet_acc"][0] == got["supernet_acc"][-1]  # cached
        # the subnet extracted after its own recalibration scores the same stand-alone
        model_acc = evaluate_configs(model, [configs[0]], calib, evaluation)[0][0]
        assert model_acc == got["supernet_acc"][0]
        sub = model.extract(configs[0]).eval()
        acc = 100.0 * float((sub(evaluation[0][0]).argmax(1) == evaluation[0][1]).float().mean())
        assert acc == pytest.approx(model_acc)
    with pytest.raises(ValueError, match="unknown choice 'nope'"):
        FewShotSupernet(sn, "nope")
    with pytest.raises(ValueError, match="cover its values"):
        FewShotSupernet(sn, "op", groups=[["conv3"], ["pool"]])
