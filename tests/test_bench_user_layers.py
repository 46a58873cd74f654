"""A user's own layers in the benchmarks: `kernels --shape`, `separable --shape`, `--layers` matched
against each suite's own names, and the numbers of a --shape comparison against cnn.cost's."""
import json
import re

import pytest

pytest.importorskip("rich")
pytest.importorskip("matplotlib")

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import layers, machine, suite_separable  # noqa: E402
from benchmarks.timing import Budget  # noqa: E402
from cnn import cost  # noqa: E402
from .conftest import FAKE_CEILINGS  # noqa: E402



@pytest.fixture
def quick(monkeypatch):
    """Fixed ceilings and short timings: these tests check the plumbing, not the speed."""
    monkeypatch.setattr(machine, "cpu_ceilings", lambda threads, quick=True: dict(FAKE_CEILINGS, threads=threads))
    monkeypatch.setattr(cli, "QUICK", Budget(seconds=0.02, min_rounds=2, max_rounds=3, warmup=1))


def test_kernels_shape_defaults_and_fields():
    a = layers.parse_shape("1,64,56,64,3")
    assert (a.N, a.C, a.HW, a.K, a.RS, a.stride, a.pad, a.groups) == (1, 64, 56, 64, 3, 1, "same", 1)
    assert a.geometry.out_shape == (1, 64, 56, 56) and a.layer_class == "regular"
    b = layers.parse_shape(" 8, 144, 56, 144, 3, 2, 1, 144 ")
    assert (b.stride, b.pad, b.groups, b.layer_class) == (2, 1, 144, "depthwise")
    assert b.geometry.out_shape == (8, 144, 28, 28)
    assert layers.parse_shape("1,16,9,8,4").geometry.out_shape == (1, 8, 9, 9)      # even "same", as kernels pad
    assert layers.parse_shape("1,16,9,8,3,1,valid").geometry.out_shape == (1, 8, 7, 7)
    assert layers.parse_shape("1,64,7,32,1,1,0").layer_class == "pointwise"


@pytest.mark.parametrize("text, match", [
    ("1,64,56,64", "N,C,H,K,R"), ("1,64,56,64,3,1,1,1,9", "N,C,H,K,R"), ("1,64,x,64,3", "H must be an int"),
    ("1,0,56,64,3", "C must be >= 1"), ("1,3,224,64,7,2", r"padding 'same' needs stride 1.*1,3,224,64,7,2,3"),
    ("1,64,56,64,3,1,-1", "pad must be >= 0"), ("1,64,56,64,3,1,SAME", "pad must be an int"),
    ("1,6,8,4,3,1,1,4", "groups=4 does not divide"), ("1,3,4,8,7,1,0", "larger than the padded input"),
])
def test_kernels_shape_errors(text, match):
    with pytest.raises(ValueError, match=match):
        layers.parse_shape(text)


def test_separable_shape():
    cmp = suite_separable.parse_shape("40,96,160,3")
    assert cmp.name == "shape.40x96->160.f3" and cmp.source == "--shape" and cmp.family == "block"
    s = cost.depthwise_separable(40, 40, 96, 160, 3)
    assert [st.geometry.macs for st in cmp.alt] == [s.depthwise.macs, s.pointwise.macs]
    assert cmp.base[0].geometry.macs == s.normal.macs and cmp.theory_ratio == pytest.approx(float(s.ratio))
    for text, match in (("40,96,160", "n,c,k,f"), ("40,96,160,0", "f must be >= 1"), ("40,96,x,3", "k must be an int")):
        with pytest.raises(ValueError, match=match):
            suite_separable.parse_shape(text)


def test_layers_are_matched_against_each_suites_names():
    assert [c.name for c in suite_separable.select("mv1.*", full=False)] == [
        "mv1.112x32->64", "mv1.56x128->128", "mv1.14x512->512", "mv1.7x1024->1024"]
    assert len(suite_separable.select("grid.*", full=True)) == 54
    with pytest.raises(ValueError, match="add --full"):
        suite_separable.select("grid.n14.c32.*", full=False)
    with pytest.raises(ValueError, match="matches no comparison of the separable suite: grid.n56"):
        suite_separable.select("vgg.*", full=False)
    with pytest.raises(ValueError, match="matches no layer of the kernels suite: lenet.c1"):
        layers.select("mv1.*")


@pytest.mark.parametrize("argv, match", [
    (["separable", "--layers", "vgg.*"], "no comparison of the separable suite"),
    (["kernels", "--layers", "mv1.*"], "no layer of the kernels suite"),
    (["--layers", "nothing*"], "no layer of the kernels suite.*no comparison of the separable suite"),
    (["--shape", "1,2,3,4,5"], "--shape needs the suite it is for"),
    (["networks", "--shape", "1,2,3,4,5"], "--shape needs the suite"),
    (["networks", "--layers", "vgg.*"], "networks takes --networks"),
    (["kernels", "--shape", "1,3,224,64,7,2"], "padding 'same' needs stride 1"),
    (["separable", "--shape", "1,2,3"], "n,c,k,f"),
])
def test_command_line_errors(argv, match, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert re.search(match, capsys.readouterr().err)


def test_a_pattern_for_one_suite_skips_the_other_when_all_run():
    a = cli.parse_args(["--layers", "mv1.*"])
    assert a.layer_list is None and [c.name for c in a.separable_items][0] == "mv1.112x32->64"
    assert a.skipped and "kernels suite" in a.skipped[0]
    a = cli.parse_args(["kernels", "--shape", "1,8,8,8,3", "--layers", "vgg.c3_2"])
    assert [layer.name for layer in a.layer_list] == ["shape 1,8,8,8,3,1,same,1", "vgg.c3_2"]


def test_kernels_shape_run(quick, tmp_path):
    out = tmp_path / "k"
    assert cli.main(["kernels", "--shape", "1,16,12,16,3", "--shape", "1,16,12,16,3,2,1,16",
                     "--threads", "1", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["options"]["shapes"] == ["1,16,12,16,3", "1,16,12,16,3,2,1,16"]
    rows = r["kernels"]["cpu"]["rows"]
    assert [row["layer"] for row in rows] == ["shape 1,16,12,16,3,1,same,1", "shape 1,16,12,16,3,2,1,16"]
    assert rows[0]["macs"] == 16 * 12 * 12 * 16 * 9 and rows[1]["class"] == "depthwise"
    assert rows[0]["results"]["auto"]["status"] == "ok" and rows[1]["results"]["pointwise"] == {"status": "n/a"}
    summary = r["kernels"]["cpu"]["summary"]
    assert summary["bars"] == [] and summary["geomean_ratio"]      # the bars are the layer set's only


def test_separable_shape_run_agrees_with_the_cost_model(quick, tmp_path):
    out = tmp_path / "s"
    assert cli.main(["separable", "--shape", "20,32,48,3", "--threads", "1", "--out", str(out)]) == 0
    (row,) = json.loads((out / "results.json").read_text())["separable"]["cpu"]["rows"]
    roof = cost.Roofline(FAKE_CEILINGS["peak_gflops"]["float32"], FAKE_CEILINGS["roofline_bandwidth_gbps"])
    s = cost.depthwise_separable(20, 20, 32, 48, 3, roofline=roof)
    assert row["name"] == "shape.20x32->48.f3" and row["source"] == "--shape"
    assert row["base_macs"] == s.normal.macs and row["alt_macs"] == s.macs
    assert row["base_bytes"] == s.normal.bytes_moved and row["alt_bytes"] == s.bytes_moved
    assert row["theory_ratio"] == pytest.approx(float(s.ratio))
    assert row["roofline_ratio"] == pytest.approx(s.roofline_ratio)
    assert row["measured_ratio_ours"] > 0
