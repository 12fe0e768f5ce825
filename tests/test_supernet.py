"""Supernet training and evaluation on sklearn digits with tiny networks (CPU, seconds)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from ray_nasrank.data import load_dataset
from ray_nasrank.nn import NB201Supernet, Supernet, count_parameters
from ray_nasrank.spaces import EDGE_KEYS, OPS, NB201Space
from ray_nasrank.supernet import (
    BatchedEvaluator,
    FairSampler,
    FewShotSupernet,
    GroupDistancePairSampler,
    LandmarkRegularizer,
    ParamCountTeacher,
    RankDistiller,
    SupernetTrainConfig,
    SupernetWeakLabels,
    UniformSampler,
    evaluate_configs,
    evaluate_subnet,
    group_distance,
    iso_representatives,
    parse_split,
    train_supernet,
)
from ray_nasrank.training import recalibrate_bn

SPACE = NB201Space()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # the test machine is shared: one thread avoids oversubscription stalls; restored afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _batches(split, bs, n, offset=0):
    return [(split.x[offset + i * bs: offset + (i + 1) * bs], split.y[offset + i * bs: offset + (i + 1) * bs])
            for i in range(n)]


@pytest.fixture(scope="module")
def trained(digits):
    torch.manual_seed(0)
    sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1, num_classes=10)
    hist = train_supernet(sn, digits.train, SupernetTrainConfig(epochs=4, batch_size=32, lr=0.05, seed=0))
    return sn, hist


def test_supernet_training_lowers_loss(trained, digits):
    sn, hist = trained
    assert len(hist["epoch_loss"]) == 4 and hist["steps"] == 4 * (len(digits.train) // 32)
    assert hist["epoch_loss"][-1] < hist["epoch_loss"][0] - 0.3
    # a trained path beats chance on held-out data after recalibration
    calib = [x for x, _ in _batches(digits.train, 64, 2)]
    acc, _ = evaluate_subnet(sn, ("nor_conv_3x3",) * 6, calib, _batches(digits.valid, 64, 2))
    assert acc > 25.0  # chance is 10 %


def test_recalibrated_subnet_equals_extracted_network(trained, digits):
    sn, _ = trained
    arch = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3")
    calib = [x for x, _ in _batches(digits.train, 64, 2)]
    recalibrate_bn(sn, calib, lambda x: sn(x, arch))
    net = sn.extract(arch)
    x = digits.valid.x[:32]
    assert torch.allclose(sn(x, arch), net(x), atol=1e-5)
    # recalibrating the stand-alone copy on the same batches changes nothing
    before = net(x)
    recalibrate_bn(net, calib)
    assert torch.allclose(before, net(x), atol=1e-5)


def test_nb201_supernet_meets_the_supernet_interface(trained, digits):
    sn, _ = trained
    assert isinstance(sn, Supernet)
    assert sn.labels == tuple(f"cell/{e}" for e in EDGE_KEYS) and sn.plain_space()["cell/e3_2"] == list(OPS)
    arch = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3")
    config = sn.config_of(SPACE.to_string(arch))
    assert tuple(config.values()) == arch and sn.config_of(config) == config == sn.config_of(SPACE.to_config(arch))
    with pytest.raises(ValueError, match="conv7"):
        sn.config_of(("conv7",) * 6)
    kept, fresh = sn.extract(config), sn.model_fn(reset=True)(config)
    assert count_parameters(fresh) == sn.subnet_parameters(arch)
    assert not torch.equal(kept.cells[0].edges[0][1].weight, fresh.cells[0].edges[0][1].weight)
    # weak labels for any form of config, through the same path as a user's supernet
    calib, evaluation = [digits.train.x[:32]], _batches(digits.valid, 32, 1)
    weak = SupernetWeakLabels(sn, calib, evaluation)
    got = weak([config, SPACE.to_string(arch), ("none",) * 6])["supernet_acc"]
    assert got[0] == got[1] and got[1] == evaluate_subnet(sn, arch, calib, evaluation)[0]
    if importlib.util.find_spec("ray") is not None:
        assert set(sn.param_space({"lr": 0.1})) == {"lr", "cell"}
        with pytest.raises(ValueError, match="clash"):
            sn.param_space({"cell": 1})


def test_batched_evaluation_matches_one_at_a_time(trained, digits):
    sn, _ = trained
    calib = [x for x, _ in _batches(digits.train, 32, 2)]
    evaluation = _batches(digits.valid, 32, 2)
    archs = SPACE.sample_many(9, rng=3) + [("none",) * 6, ("skip_connect",) * 6]
    ref = np.array([evaluate_subnet(sn, a, calib, evaluation) for a in archs])
    for kwargs in ({"chunk": 4}, {"chunk": 64}, {"chunk": 3, "channels_last": True}):
        acc, loss = BatchedEvaluator(sn, calib, evaluation, **kwargs).evaluate(archs)
        np.testing.assert_allclose(acc, ref[:, 0], atol=1e-9)
        np.testing.assert_allclose(loss, ref[:, 1], rtol=1e-4, atol=1e-5)
        # the one evaluation path takes NB201's batched evaluator, with the same options
        same = evaluate_configs(sn, archs, calib, evaluation, **kwargs)
        np.testing.assert_array_equal(same[0], acc)
        np.testing.assert_array_equal(same[1], loss)
    one_at_a_time = evaluate_configs(sn, archs, calib, evaluation, batched=False)
    np.testing.assert_allclose(np.stack(one_at_a_time, 1), ref)
    # bfloat16 autocast: close, not equal
    _, loss_bf = BatchedEvaluator(sn, calib, evaluation, amp=True).evaluate(archs)
    np.testing.assert_allclose(loss_bf, ref[:, 1], rtol=0.1, atol=0.05)


def test_evaluator_rejects_bad_batches(trained, digits):
    sn, _ = trained
    with pytest.raises(ValueError, match="one size"):
        BatchedEvaluator(sn, [digits.train.x[:16]], _batches(digits.valid, 32, 1))
    with pytest.raises(ValueError, match="need calibration and evaluation"):
        BatchedEvaluator(sn, [], _batches(digits.valid, 32, 1))
    with pytest.raises(TypeError, match="NB201Supernet"):
        BatchedEvaluator(torch.nn.Linear(2, 2), [digits.train.x[:16]], _batches(digits.valid, 16, 1))
    with pytest.raises(TypeError, match="Supernet"):
        evaluate_configs(torch.nn.Linear(2, 2), [], [digits.train.x[:16]], _batches(digits.valid, 16, 1))
    with pytest.raises(ValueError, match=r"\['chunk'\] apply to a batched evaluator"):
        evaluate_configs(sn, [("none",) * 6], [digits.train.x[:16]], _batches(digits.valid, 16, 1), batched=False,
                         chunk=2)


def test_iso_sweep_copies_representative(trained, digits):
    sn, _ = trained
    calib = [digits.train.x[:16]]
    evaluation = _batches(digits.valid, 16, 1)
    # node 1 feeds nothing when e2_1 and e3_1 are none, so its op does not matter
    archs = [("skip_connect", "none", "none", "skip_connect", "none", "none"),
             ("nor_conv_3x3", "none", "none", "skip_connect", "none", "none"),
             ("nor_conv_3x3",) * 6]
    reps, members = iso_representatives(archs)
    assert len(reps) == 2 and list(members) == [0, 0, 1]
    assert iso_representatives(archs, SPACE)[0] == reps
    acc, _ = evaluate_configs(sn, reps, calib, evaluation)
    assert acc[members][0] == acc[members][1]
    full, _ = evaluate_configs(sn, archs, calib, evaluation)
    assert full[0] == acc[0]


def test_group_distance_and_sampler_margin():
    conv3, conv1, skip, none = "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "none"
    assert group_distance((conv3,) * 6, (conv3,) * 6) == 0.0
    assert group_distance((conv3,) * 6, (conv1,) * 6) == 3.0          # within the parametric group
    assert group_distance((skip,) * 6, (none,) * 6) == 3.0            # within the non-parametric group
    assert group_distance((conv3,) * 6, (skip,) * 6) == 12.0          # across groups counts 4x more
    sampler = GroupDistancePairSampler(mu=6.7, rng=0)
    pairs = [sampler.sample() for _ in range(300)]
    assert all(group_distance(a, b) > 6.7 for a, b in pairs)
    assert 300 < sampler.tries  # some draws were rejected
    # unfiltered uniform pairs fall below the margin often, so the filter is doing real work
    u = UniformSampler(1)
    assert np.mean([group_distance(u.sample(), u.sample()) > 6.7 for _ in range(300)]) < 0.8
    with pytest.raises(ValueError, match="cannot be exceeded"):
        GroupDistancePairSampler(mu=12.0)


def _fake_model(losses: dict):
    # logits whose cross-entropy against label 0 is exactly losses[arch]
    def model(x, arch):
        p = torch.exp(-torch.tensor(losses[arch], requires_grad=False))
        rest = (1 - p) / 9
        logits = torch.log(torch.cat([p.view(1), rest.repeat(9)]))
        return logits.unsqueeze(0).repeat(len(x), 1)
    return model


def test_landmark_hinge_penalises_wrong_order_only():
    good, bad = ("nor_conv_3x3",) * 6, ("none",) * 6
    reg = LandmarkRegularizer([(good, 90.0), (bad, 10.0)], coef=4.0, start=1.0, warmup=2.0, rng=0)
    x, y = torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    assert reg.loss(_fake_model({good: 2.0, bad: 0.5}), x, y, epoch=0.5) is None   # before start
    wrong = reg.loss(_fake_model({good: 2.0, bad: 0.5}), x, y, epoch=3.0)
    assert float(wrong) == pytest.approx(4.0 * 1.5, rel=1e-4)
    right = reg.loss(_fake_model({good: 0.5, bad: 2.0}), x, y, epoch=3.0)
    assert float(right) == 0.0
    assert reg.coefficient(2.0) == pytest.approx(2.0)  # half-way through the cosine warm-up
    with pytest.raises(ValueError, match="at least 2 landmarks"):
        LandmarkRegularizer([(good, 1.0)])
    with pytest.raises(ValueError, match="all landmark accuracies are equal"):
        LandmarkRegularizer([(good, 1.0), (bad, 1.0)])


def test_param_teacher_is_exact():
    sn = NB201Supernet(channels=4, cells_per_stage=2, in_channels=1)
    teacher = ParamCountTeacher(sn)
    fs = FewShotSupernet(sn, 0)
    for a in SPACE.sample_many(5, rng=0):
        assert teacher(a) == count_parameters(sn.extract(a))
        # NB201 sums per op; the interface's default counts the extracted network
        assert ParamCountTeacher(fs)(a) == teacher(a)
    with pytest.raises(TypeError, match="Supernet"):
        ParamCountTeacher(torch.nn.Linear(2, 2))


def test_rank_distiller_margin_loss():
    a, b = ("nor_conv_3x3",) * 6, ("skip_connect",) * 6

    class Fixed:
        tries = 0

        def sample(self):
            return a, b

    teacher = {a: 2.0, b: 1.0}.__getitem__
    x, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    rd = RankDistiller(teacher, weight=2.0, ramp=4.0, margin=0.1, sampler=Fixed())
    # the teacher prefers a; the student (lower loss = better) prefers b: loss = ce + w * (la - lb + margin)
    loss = rd.loss(_fake_model({a: 1.5, b: 1.0}), x, y, epoch=2.0)
    assert float(loss) == pytest.approx(0.5 * 2.5 + 1.0 * (0.5 + 0.1), rel=1e-4)
    loss = rd.loss(_fake_model({a: 0.5, b: 1.0}), x, y, epoch=2.0)
    assert float(loss) == pytest.approx(0.5 * 1.5, rel=1e-4)   # right order beyond the margin
    with pytest.raises(TypeError, match="callable"):
        RankDistiller(teacher=3)


def test_training_with_landmarks_and_distillation_runs(digits):
    torch.manual_seed(0)
    sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
    land = LandmarkRegularizer([(a, float(i)) for i, a in enumerate(SPACE.sample_many(4, rng=0))],
                               start=0.0, warmup=0.5, rng=0)
    rd = RankDistiller(ParamCountTeacher(sn), ramp=0.5, rng=0)
    hist = train_supernet(sn, digits.train, SupernetTrainConfig(epochs=2, batch_size=128, lr=0.1),
                          landmark=land, distill=rd, landmark_data=digits.test)
    assert hist["epoch_loss"][1] < hist["epoch_loss"][0]


def test_fewshot_split_routes_and_inherits_weights(trained, digits):
    base, _ = trained
    fs = FewShotSupernet(base, "cell/e3_0", groups=[["none", "skip_connect", "avg_pool_3x3"],
                                                     ["nor_conv_1x1"], ["nor_conv_3x3"]])
    assert len(fs.subnets) == 3 and fs.label == "cell/e3_0" and FewShotSupernet(base, 3).label == "cell/e3_0"
    arch = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_1x1", "none", "nor_conv_3x3")
    assert fs.route(arch) == 1
    fs.eval()
    base.eval()
    x = digits.valid.x[:8]
    assert torch.allclose(fs(x, arch), base(x, arch))  # initialised from the one-shot supernet
    assert fs.subnets[0] is not base
    train_supernet(fs, digits.train, SupernetTrainConfig(epochs=1, batch_size=128, lr=0.1))
    fs.eval()
    assert not torch.allclose(fs(x, arch), base(x, arch))
    assert torch.allclose(fs(x, arch), fs.extract(arch)(x), atol=1e-6)
    calib = [digits.train.x[:32]]
    evaluation = _batches(digits.valid, 32, 1)
    archs = SPACE.sample_many(6, rng=5)
    acc, loss = evaluate_configs(fs, archs, calib, evaluation)
    for i, a in enumerate(archs):
        ref = evaluate_subnet(fs.subnets[fs.route(a)], a, calib, evaluation)
        assert acc[i] == pytest.approx(ref[0]) and loss[i] == pytest.approx(ref[1], rel=1e-4)


def test_parse_split_rejects_bad_splits():
    assert parse_split(SPACE, "cell/e2_1") == ("cell/e2_1", [[op] for op in OPS])
    assert parse_split(SPACE, 2) == ("cell/e2_1", [[op] for op in OPS])
    with pytest.raises(ValueError, match="unknown choice 'e9_9'"):
        parse_split(SPACE, "e9_9")
    with pytest.raises(ValueError, match="index 6 .* outside 0..5"):
        parse_split(SPACE, 6)
    with pytest.raises(ValueError, match="cover its values"):
        parse_split(SPACE, 0, [["none"], ["skip_connect"]])
    with pytest.raises(ValueError, match=r"unknown value\(s\) \['conv7'\]"):
        parse_split(SPACE, 0, [["conv7"], list(OPS)])
    with pytest.raises(TypeError, match="Supernet"):
        FewShotSupernet(torch.nn.Linear(2, 2), 0)


def test_train_config_validation():
    with pytest.raises(ValueError, match="batch_size"):
        SupernetTrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="lr must be"):
        SupernetTrainConfig(lr=float("nan"))


def test_cli_bench_supernet_writes_labels_and_summary(tmp_path):
    from ray_nasrank.cli import main

    archs = SPACE.sample_many(12, rng=0, unique=True)
    gt = tmp_path / "gt.csv"
    pd.DataFrame({"arch": [SPACE.to_string(a) for a in archs],
                  "test_acc": np.linspace(50, 90, 12)}).to_csv(gt, index=False)
    out = tmp_path / "out"
    rc = main(["bench", "supernet", "--dataset", "digits", "--method", "landmark", "--epochs", "1",
               "--channels", "4", "--cells-per-stage", "1", "--device", "cpu", "--ground-truth", str(gt),
               "--landmarks", "4", "--archs", "gt", "--eval-batch-size", "32", "--batch-size", "64",
               "--landmark-start", "0", "--save-supernet", "--threads", "1", "--out", str(out)])
    assert rc == 0
    table = pd.read_parquet(out / "weak_labels.parquet")
    assert list(table.columns[:2]) == ["arch", "weak_acc"] and len(table) == 12
    assert table["weak_acc"].between(0, 100).all()
    summary = json.loads((out / "summary.json").read_text())
    for key in ("kendall_tau", "ndcg@50", "train_seconds", "weak_labels_per_second", "config",
                "kendall_tau_neg_loss", "kendall_tau_neg_loss_all_gt"):
        assert key in summary
    # the CPU budget of a shared machine: user + sys seconds of training and of scoring, and the load
    assert 0 < summary["train_cpu_seconds"] and 0 < summary["eval_cpu_seconds"]
    assert len(summary["load_average"]["start"]) == 3
    assert summary["n_ranked"] == 8 and summary["n_landmarks"] == 4
    assert summary["config"]["method"] == "landmark"
    # a saved supernet re-evaluates to the same weak labels without training
    again = tmp_path / "again"
    rc = main(["bench", "supernet", "--dataset", "digits", "--method", "landmark", "--channels", "4",
               "--cells-per-stage", "1", "--device", "cpu", "--ground-truth", str(gt), "--landmarks", "4",
               "--archs", "gt", "--eval-batch-size", "32", "--load-supernet", str(out / "supernet.pt"), "--threads", "1",
               "--landmarks-from", str(out / "summary.json"), "--out", str(again)])
    assert rc == 0
    np.testing.assert_allclose(pd.read_parquet(again / "weak_labels.parquet")["weak_acc"], table["weak_acc"])
    # the training time of the run that made the weights is carried over
    assert json.loads((again / "summary.json").read_text())["train_seconds"] == summary["train_seconds"]
    assert json.loads((again / "summary.json").read_text())["train_cpu_seconds"] == summary["train_cpu_seconds"]
    assert json.loads((again / "summary.json").read_text())["landmark_archs"] == summary["landmark_archs"]


def test_cli_bench_supernet_bad_input(tmp_path, capsys):
    from ray_nasrank.cli import main

    assert main(["bench", "supernet", "--method", "landmark", "--out", str(tmp_path)]) == 2
    assert "needs --ground-truth" in capsys.readouterr().err
    assert main(["bench", "supernet", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert main(["bench", "supernet", "--method", "fewshot", "--fewshot-edge", "e9_9", "--out", str(tmp_path)]) == 2
    assert "unknown --fewshot-edge 'e9_9'" in capsys.readouterr().err
    bad = tmp_path / "gt.csv"
    bad.write_text("arch,acc\nx,1\n")
    assert main(["bench", "supernet", "--ground-truth", str(bad), "--archs", "gt", "--dataset", "digits",
                 "--out", str(tmp_path / "o"), "--device", "cpu", "--epochs", "1"]) == 2
    assert "no column 'test_acc'" in capsys.readouterr().err


def _script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_supernet_ranker_script_scores_labels_and_0_label_rankers(tmp_path):
    script = _script("supernet_ranker")
    archs = SPACE.sample_many(16, rng=1, unique=True)
    acc = np.linspace(60, 80, 16)
    gt = tmp_path / "gt.csv"
    pd.DataFrame({"arch": [SPACE.to_string(a) for a in archs], "test_acc": acc}).to_csv(gt, index=False)
    # the weak labels of a sweep: more cells than the ground truth, in another order; the weak
    # label is the ground truth itself, so it must rank perfectly
    extra = [a for a in SPACE.sample_many(40, rng=2, unique=True) if a not in archs][:8]
    weak = tmp_path / "weak.parquet"
    pd.DataFrame({"arch": [SPACE.to_string(a) for a in extra + archs[::-1]],
                  "weak_acc": [0.0] * len(extra) + list(acc[::-1])}).to_parquet(weak)
    out, table = tmp_path / "r.json", tmp_path / "t.csv"
    assert script.main(["--ground-truth", str(gt), "--weak", str(weak), "--seeds", "1", "--out", str(out),
                        "--table-out", str(table)]) == 0
    res = json.loads(out.read_text())
    assert res["labels"]["supernet"]["kendall_tau"] == pytest.approx(1.0)
    assert set(res["labels"]) == {"params", "flops", "synflow", "supernet"}
    assert set(res["rankers_0_labels"]) == {"intrinsic", "intrinsic+supernet"}
    assert res["rankers_0_labels"]["intrinsic+supernet"]["weak"][-1] == "supernet"
    assert len(res["rankers_0_labels"]["intrinsic"]["per_seed"]) == 1
    joined = pd.read_csv(table)
    np.testing.assert_allclose(joined["supernet"], acc)
    # a ground-truth cell the sweep did not score is named, not dropped
    pd.DataFrame({"arch": [SPACE.to_string(a) for a in archs[1:]], "weak_acc": acc[1:]}).to_parquet(weak)
    with pytest.raises(ValueError, match="1 ground-truth cell"):
        script.joined_table(str(gt), str(weak))
    # the loss label is negated: a lower loss ranks higher
    pd.DataFrame({"arch": [SPACE.to_string(a) for a in archs], "weak_loss": -acc}).to_parquet(weak)
    np.testing.assert_allclose(script.joined_table(str(gt), str(weak), label="loss")["supernet"], acc)
    with pytest.raises(ValueError, match="no column"):
        script.joined_table(str(gt), str(weak), label="acc")


def test_fair_sampler_updates_every_op_of_every_edge_each_step():
    data = load_dataset("digits", limit_train=64)
    sn = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
    before = {n: p.detach().clone() for n, p in sn.named_parameters()}
    # one step (one batch of 64, no momentum or weight decay: only the gradient moves a weight)
    cfg = SupernetTrainConfig(epochs=1, batch_size=64, momentum=0.0, weight_decay=0.0)
    hist = train_supernet(sn, data.train, cfg, sampler=FairSampler(rng=0))
    assert hist["steps"] == 1
    # edge e3_0 (index 3) reads the cell input and writes the cell output, so both of its convs
    # get a gradient in the one step (other edges may read a node that is zero on some path)
    for op in ("nor_conv_1x1", "nor_conv_3x3"):
        w = f"cells.0.edges.3.{op}.1.weight"
        assert not torch.equal(before[w], dict(sn.named_parameters())[w]), w
    # a single uniform path leaves the ops it did not draw untouched
    sn2 = NB201Supernet(channels=4, cells_per_stage=1, in_channels=1)
    before2 = {n: p.detach().clone() for n, p in sn2.named_parameters()}
    train_supernet(sn2, data.train, cfg, sampler=UniformSampler(rng=0))
    after2 = dict(sn2.named_parameters())
    moved = [op for op in ("nor_conv_1x1", "nor_conv_3x3")
             if not torch.equal(before2[f"cells.0.edges.3.{op}.1.weight"], after2[f"cells.0.edges.3.{op}.1.weight"])]
    assert len(moved) <= 1


def test_bench_config_rejects_fair_rd():
    from ray_nasrank._checks import ConfigError
    from ray_nasrank.benchmarks import SupernetBenchConfig

    with pytest.raises(ConfigError, match="fair does not apply to method rd"):
        SupernetBenchConfig(out="o", method="rd", sampler="fair")
