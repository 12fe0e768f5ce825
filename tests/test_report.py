"""Reports: results-table checks, the exact random baseline, plots and the HTML page."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ray_nasrank.report import (
    best_row,
    best_so_far,
    build_report,
    check_results,
    expected_random_best,
    plot_op_distribution,
    summarise,
)
from ray_nasrank.spaces import NB201Space

SPACE = NB201Space()


def _results(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """A results table shaped like the pipeline's: true metric correlated with the prediction."""
    rng = np.random.default_rng(seed)
    archs = SPACE.sample_many(n, rng=rng, unique=True)
    pred = rng.normal(size=n)
    acc = 80 + 3 * pred + rng.normal(scale=1.0, size=n)
    return pd.DataFrame({
        "arch": [SPACE.to_string(a) for a in archs], "order": np.arange(1, n + 1),
        "round": np.repeat(np.arange(3), int(np.ceil(n / 3)))[:n], "predicted": pred,
        "weak_supernet": acc / 2 + rng.normal(size=n), "valid_acc": acc, "test_acc": acc - 1,
    })


def test_check_results_names_missing_column_and_sorts():
    df = _results().drop(columns="round")
    with pytest.raises(ValueError, match="round"):
        check_results(df, "valid_acc")
    with pytest.raises(ValueError, match="'nope'"):
        check_results(_results(), "nope")
    shuffled = _results().sample(frac=1.0, random_state=1)
    assert check_results(shuffled, "valid_acc")["order"].tolist() == list(range(1, 13))
    dup = _results()
    dup.loc[1, "order"] = 1
    with pytest.raises(ValueError, match="repeats"):
        check_results(dup, "valid_acc")


def test_best_row_and_best_so_far_handle_failures_and_mode():
    df = _results()
    df.loc[3, "valid_acc"] = np.nan
    best = best_row(df, "valid_acc", "max")
    assert best["valid_acc"] == np.nanmax(df["valid_acc"])
    assert best_row(df, "valid_acc", "min")["valid_acc"] == np.nanmin(df["valid_acc"])
    assert best_so_far(np.array([3.0, np.nan, 1.0, 2.0]), "min").tolist() == [3.0, 3.0, 1.0, 1.0]
    df["valid_acc"] = np.nan
    with pytest.raises(ValueError, match="every training failed"):
        best_row(df, "valid_acc")


def test_expected_random_best_matches_simulation_and_known_nb201_figures(nb201_bench):
    rng = np.random.default_rng(0)
    vals = rng.normal(size=40)
    sims = np.array([np.maximum.accumulate(rng.permutation(vals)[:10]) for _ in range(20000)]).mean(0)
    np.testing.assert_allclose(expected_random_best(vals, 10), sims, atol=0.02)
    np.testing.assert_allclose(expected_random_best(vals, 10, mode="min"),
                               -expected_random_best(-vals, 10), atol=1e-12)
    # the figures quoted in ../shared/data/README.md (random search on NB201 test_acc)
    e = expected_random_best(nb201_bench.targets, 100)
    assert e[[19, 49, 99]].round(2).tolist() == [93.40, 93.69, 93.85]
    with pytest.raises(ValueError, match="n_max"):
        expected_random_best(vals, 41)


def test_build_report_writes_real_plots_and_self_contained_html(tmp_path):
    df = _results(30)
    baseline = expected_random_best(df["valid_acc"].to_numpy(), 30)
    rep = build_report(tmp_path, results=df, baseline=baseline, top_k=5, space=SPACE)
    assert set(rep.plots) == {"predicted_vs_true", "best_so_far", "op_distribution"}
    for path in rep.plots.values():
        img = Image.open(path)
        assert img.format == "PNG" and img.size[0] >= 500
        # a real plot, not a blank canvas: many distinct colours
        assert len(img.convert("RGB").getcolors(maxcolors=100000)) > 50
    page = rep.html.read_text()
    assert page.count("data:image/png;base64,") == 3 and "<script" not in page
    first = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(best_row(df, "valid_acc")["arch"]) in page
    s = rep.summary
    assert s["evaluated"] == 30 and s["best_valid_acc"] == df["valid_acc"].max()
    assert s["kendall_tau_predicted_vs_true"] > 0.4  # the synthetic ranker is informative
    assert "kendall_tau_weak_supernet_vs_true" in s


def test_report_rebuilds_from_folder_with_best_json_and_baseline(tmp_path):
    df = _results(9)
    df["loss"] = -df["valid_acc"]
    df.to_parquet(tmp_path / "results.parquet", index=False)
    (tmp_path / "best.json").write_text(json.dumps({"metric": "loss", "mode": "min"}))
    pd.DataFrame({"n": np.arange(1, 10), "expected_best": np.linspace(-70, -80, 9)}).to_parquet(
        tmp_path / "baseline.parquet", index=False)
    rep = build_report(tmp_path, space="nb201")
    assert rep.summary["best_loss"] == df["loss"].min()
    assert rep.summary["best_arch"] == df.loc[df["loss"].idxmin(), "arch"]
    assert (tmp_path / "report" / "index.html").is_file()


def test_report_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.parquet"):
        build_report(tmp_path)
    with pytest.raises(ValueError, match="no search's config.json.*best.json naming its space.*space="):
        build_report(tmp_path, results=_results(4))  # which space the strings belong to is never guessed
    bad = _results(4)
    bad.loc[0, "arch"] = "not-an-arch"
    with pytest.raises(ValueError, match="row 0"):
        plot_op_distribution(bad, space=SPACE)
    with pytest.raises(ValueError, match="top_k"):
        plot_op_distribution(_results(4), top_k=0, space=SPACE)


def test_op_distribution_counts_top_archs():
    df = _results(6)
    conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    df.loc[0, "arch"], df.loc[0, "valid_acc"] = conv, 1e3
    fig = plot_op_distribution(df, top_k=1, space=SPACE)
    heat = fig.axes[0].images[0].get_array()
    col = [t.get_text() for t in fig.axes[0].get_xticklabels()].index("nor_conv_3x3")
    assert np.all(heat[:, col] == 1.0) and heat.sum() == 6


def test_summarise_reports_failures():
    df = _results(5)
    df.loc[2, "valid_acc"] = np.nan
    s = summarise(df)
    assert s["failed"] == 1 and s["evaluated"] == 5 and s["best_test_acc"] == s["best_valid_acc"] - 1


def _pipeline_folder(tmp_path, n: int = 8):
    """A folder shaped like a finished ``ray-nasrank search``: both arms, the retraining, best.json."""
    df = _results(n)
    df["round"] = np.repeat([0, 1], n // 2)
    df["valid_acc"] = df["valid_acc"] + 0.123456789  # unrounded, as real accuracies are
    df.to_parquet(tmp_path / "results.parquet", index=False)
    rnd = _results(n, seed=1).drop(columns=["round", "predicted"])
    rnd.to_parquet(tmp_path / "random.parquet", index=False)
    best = best_row(df, "valid_acc")
    rbest = best_row(rnd.assign(round=0, predicted=0.0), "valid_acc")
    pd.DataFrame({"arm": ["nasrank", "random"], "arch": [best["arch"], rbest["arch"]],
                  "search_valid_acc": [best["valid_acc"], rbest["valid_acc"]], "found_at_training": [1, 3],
                  "valid_acc": [90.98765, 90.1234], "test_acc": [91.0666666, 90.19111]}).to_parquet(
        tmp_path / "final.parquet", index=False)
    (tmp_path / "best.json").write_text(json.dumps({
        "metric": "valid_acc", "mode": "max", "space": "nb201", "arch": best["arch"], "valid_acc": 90.98765,
        "test_acc": 91.0666666,
        "search_valid_acc": float(best["valid_acc"]), "random_baseline": {"test_acc": 90.19111},
        "step_seconds": {"data": 1.234, "final": 300.5}}))
    return df, rnd


def _visible_text(page: str) -> str:
    import re

    page = re.sub(r"<img[^>]*>", "", page)
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return re.sub(r"<[^>]+>", " ", page)


def test_report_shows_the_fidelities_the_rungs_and_the_notes(tmp_path):
    """Successive halving: the fidelities actually trained, every rung above the search, and the
    notes (the random arm won) in words."""
    df, rnd = _pipeline_folder(tmp_path)
    best = json.loads((tmp_path / "best.json").read_text())
    fid = {"image_size": 8, "train_images": 1294, "epochs": 14, "batch_size": 128, "steps": 154}
    best.update(fidelity={"search": fid, "full": {**fid, "epochs": 41, "steps": 451}}, time_budget_s=300.0,
                notes=["the random arm's winner beat the searched one: 61.00 % against 43.73 % test accuracy"])
    (tmp_path / "best.json").write_text(json.dumps(best))
    pd.DataFrame({"arm": ["nasrank", "random"], "rung": [2, 2], "arch": [df["arch"].iloc[0], rnd["arch"].iloc[0]],
                  "valid_acc": [97.2, 96.5], "test_acc": [98.1, 97.7], "image_size": [8, 8],
                  "train_images": [1294, 1294], "epochs": [41, 41]}).to_parquet(tmp_path / "rungs.parquet")
    import html
    import re

    text = re.sub(r"\s+", " ", html.unescape(_visible_text(build_report(tmp_path).html.read_text())))
    assert "search fidelity (actually trained) 8x8 images, 1,294 of them, 14 epochs (154 steps of 128)" in text
    assert "full fidelity (actually trained) 8x8 images, 1,294 of them, 41 epochs (451 steps of 128)" in text
    assert "the random arm's winner beat the searched one" in text and "time budget (s) 300.00" in text
    assert "Successive halving" in text and "98.1" in text


def test_report_page_reads_as_a_person_would(tmp_path):
    """The page of a pipeline run: rounded figures, one line per panel, the random arm side by
    side, what a weak label's tau means, tables that wrap instead of widening the page."""
    import re

    df, rnd = _pipeline_folder(tmp_path)
    rep = build_report(tmp_path)  # the space best.json names
    page = rep.html.read_text()
    text = _visible_text(page)
    # figures are rounded: no number with more than 2 decimals anywhere a person reads
    assert not re.findall(r"\d+\.\d{3,}", text), re.findall(r"\d+\.\d{3,}", text)[:5]
    assert "91.07" in text and "90.19" in text  # both arms' retrained test accuracy
    # every figure comes with one line saying what it shows
    for heading in ("Best so far", "Predicted vs true rank", "Operations of the top architectures"):
        block = page.split(f"<h2>{heading}</h2>")[1]
        assert block.lstrip().startswith("<p class='what'>"), heading
    assert page.count("<img") == 3
    assert "At full fidelity: the search against random" in text
    # what a weak label's tau of 0 implies, and each label's reading
    assert "0 = unrelated (the label tells the ranker nothing here)" in text
    assert "Weak labels against the truth" in text and "supernet" in text
    # the page fits: tables are as wide as the page and arch strings wrap inside their cells
    assert "table { border-collapse: collapse; font-size: 0.88em; width: 100%" in page
    assert "overflow-wrap: anywhere" in page.split("code {")[1].split("}")[0]
    assert f"<code>{df['arch'].iloc[0]}</code>" in page
    assert "trial_id" not in text and "predicted_prior" not in text
    assert rep.summary["weak_label_tau"]["weak_supernet"] is not None


def test_report_plots_rounds_as_a_legend_and_the_real_top_set(tmp_path):
    from ray_nasrank.report import plot_predicted_vs_true

    df = _results(8)
    df["round"] = np.repeat([0, 1], 4)
    fig = plot_predicted_vs_true(df)
    assert len(fig.axes) == 1  # no colour bar for a handful of rounds
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:2] == ["round 1", "round 2"]
    # "top k" is a real top set: with 8 evaluated it is the best 2, not all 8
    fig = plot_op_distribution(df, top_k=10, space=SPACE)
    assert fig.axes[0].get_title() == "op per edge, top 2 of 8 by valid_acc"
    assert fig.axes[0].images[0].get_array().sum() == 6 * 1.0


def test_weak_taus_are_scipy_kendall_and_none_when_undefined():
    from scipy.stats import kendalltau

    from ray_nasrank.report import weak_taus

    df = _results(10)
    df["weak_const"] = 1.0
    taus = weak_taus(df)
    assert taus["weak_supernet"] == round(kendalltau(df["weak_supernet"], df["valid_acc"]).statistic, 3)
    assert taus["weak_const"] is None
