"""The benchmark harness behind ``lrn-core bench``: structure of its results and reports.

Tiny shapes, one pyperf worker per row with few values; no assertion on any timing (the machines
are shared and noisy). torch.compile is never run here (it compiles for tens of seconds).
"""

import json
import subprocess
import sys

import pytest

from lrn_core import check, cli
from lrn_core.benchmarks import harness

TINY = "8x6x6"  # C x H x W; the batch comes from --batch / quick (2)
FAST = ["--quick", "--shapes", TINY, "--values", "2", "--no-compile", "--no-progress"]


def _installed(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_run_numpy_rows_and_ratios():
    res = harness.run([TINY], frameworks="numpy", values=3, quick=True, progress=False)
    assert res.cases() == [(f"2x{TINY}", res.rows[0].threads)]
    got = {(r.impl, r.pass_) for r in res.rows}
    assert got == {
        ("copy floor (numpy.copyto)", "copy"),
        ("lrn-core numpy", "fwd"),
        ("lrn-core numpy", "bwd"),
        ("lrn-core numpy", "fwd+bwd"),
    }
    (copy,) = [r for r in res.rows if r.impl == "copy floor (numpy.copyto)" and r.pass_ == "copy"]
    for r in res.rows:
        assert r.ok, r.status
        assert r.shape == (2, 8, 6, 6) and r.dtype == "float32" and r.size == 5
        assert len(r.times_ms) == 3 and r.median_ms > 0 and r.min_ms <= r.median_ms
        assert r.median_ms == sorted(r.times_ms)[1] and r.min_ms == min(r.times_ms)
        assert r.median_ms <= r.p90_ms <= max(r.times_ms) and r.loops == 1
        assert r.x_copy == pytest.approx(r.median_ms / copy.median_ms)
        assert r.speedup is None  # no native requested
    assert res.meta["settings"]["values"] == 3 and res.meta["settings"]["processes"] == 1
    assert res.meta["settings"]["frameworks"] == ["numpy"]
    # the dict form round-trips
    again = harness.BenchResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert [r.median_ms for r in again.rows] == [r.median_ms for r in res.rows]


def test_ratios_are_within_a_case():
    """speedup = fastest native of the same case and pass / median; x copy = median / copy."""

    def row(case, impl, pass_, ms):
        return harness.Row(
            case=case,
            shape=(1, 1, 1, 1),
            dtype="float32",
            size=5,
            beta=0.75,
            threads=1,
            impl=impl,
            kind=harness.IMPL_KIND[impl],
            framework="x",
            layout="NCHW",
            pass_=pass_,
            times_ms=[ms, ms, ms],
            median_ms=ms,
        )

    rows = [
        row("a", "copy floor (numpy.copyto)", "copy", 2.0),
        row("a", "lrn-core numpy", "fwd", 4.0),
        row("a", "torch eager (native)", "fwd", 40.0),
        row("a", "tf native", "fwd", 20.0),
        row("b", "copy floor (numpy.copyto)", "copy", 1.0),
        row("b", "lrn-core numpy", "fwd", 4.0),
        row("b", "torch eager (native)", "fwd", 8.0),
    ]
    harness._summarise(rows)
    assert rows[1].x_copy == 2.0 and rows[1].speedup == 5.0 and rows[1].best_native == "tf native"
    assert rows[2].speedup == 0.5 and rows[3].speedup == 1.0
    assert rows[5].x_copy == 4.0 and rows[5].speedup == 2.0


def test_main_quick_writes_markdown_and_json(tmp_path, capsys):
    md, js = tmp_path / "bench.md", tmp_path / "bench.json"
    assert (
        harness.main(
            FAST + ["--frameworks", "numpy,torch,tf", "--markdown", str(md), "--json", str(js)]
        )
        == 0
    )
    out = capsys.readouterr().out
    for text in (
        "median ms",
        "x copy",
        "speedup vs best native",
        "copy floor (numpy.copyto)",
        "lrn-core numpy",
        "Summary (medians, ms)",
        "pyperf",
        "1 worker process(es) x 2 value(s) of 1 call(s)",
    ):
        assert text in out
    data = json.loads(js.read_text())
    rows = data["rows"]
    impls = {r["impl"] for r in rows}
    assert {"copy floor (numpy.copyto)", "lrn-core numpy"} <= impls
    assert "torch.compile (native)" not in impls
    if _installed("torch"):
        assert {"lrn-core torch adapter", "torch eager (native)"} <= impls
        eager = [r for r in rows if r["impl"] == "torch eager (native)"]
        assert {r["pass_"] for r in eager} == {"fwd", "fwd+bwd"}
        assert all(r["status"] == "ok" and len(r["times_ms"]) == 2 for r in eager)
        core = [r for r in rows if r["impl"] == "lrn-core numpy" and r["pass_"] != "bwd"]
        assert all(r["speedup"] is not None and r["best_native"] for r in core)
    if _installed("tensorflow"):
        tf_native = [r for r in rows if r["impl"] == "tf native"]
        assert {r["layout"] for r in tf_native} == {"NHWC"}
        assert all(r["status"] == "ok" for r in tf_native)
    for r in rows:  # an adapter may still be missing, but nothing else may fail
        assert r["status"] == "ok" or r["status"].startswith("n/a"), r

    text = md.read_text()
    assert text.startswith("# lrn-core bench\n")
    assert "## Summary (medians, ms)" in text
    if _installed("torch") and _installed("tensorflow"):  # the columns BENCHMARKS.md quotes
        assert (
            "| case | threads | pass | lrn-core numpy ms | torch adapter ms | tf adapter ms "
            "| fastest native ms | numpy speedup |"
        ) in text
    header = "| " + " | ".join(harness.COLUMNS) + " |"
    assert text.count(header) == 1  # one case
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert all(
        ln.count("|") == len(harness.COLUMNS) + 1
        for ln in table
        if ln.startswith("| copy floor") or ln.startswith("| lrn-core numpy")
    )
    assert f"## 2x{TINY}: x 2x{TINY} float32, size 5" in text


def test_threads_run_in_worker_processes(tmp_path):
    """pyperf's workers get OMP_NUM_THREADS of their row; the split copy (--variants
    copy-threads) uses as many Python threads."""
    js = tmp_path / "bench.json"
    args = ["--frameworks", "numpy", "--threads", "1,2", "--variants", "copy-threads"]
    assert harness.main(FAST + args + ["--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert {r["threads"] for r in data["rows"]} == {1, 2}
    split = [r for r in data["rows"] if r["impl"] == "copy split over the threads"]
    assert [r["threads"] for r in split] == [1, 2] and all(r["status"] == "ok" for r in split)
    for t in ("1", "2"):
        assert data["meta"]["threads_reported"][t]["lrn-core (OpenMP)"] == int(t)
    assert not [n for n in data["meta"]["notes"] if "threads" in n]  # none ran another count


def test_worker_processes_ignore_modules_in_the_working_directory(tmp_path, monkeypatch):
    """A script in the current directory named like a module the workers import must not
    shadow it (``python -m`` puts the current directory first on sys.path)."""
    (tmp_path / "statistics.py").write_text("raise ImportError('the stray statistics.py')\n")
    monkeypatch.chdir(tmp_path)
    js = tmp_path / "bench.json"
    assert harness.main(FAST + ["--frameworks", "numpy", "--threads", "1", "--json", str(js)]) == 0
    rows = json.loads(js.read_text())["rows"]
    assert rows and all(r["status"] == "ok" for r in rows if r["impl"] == "lrn-core numpy")


def test_plot_writes_a_png(tmp_path, capsys):
    png = tmp_path / "bench.png"
    if not _installed("matplotlib"):
        pytest.skip("matplotlib not installed")
    assert harness.main(FAST + ["--frameworks", "numpy", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out


def test_cli_bench_passes_its_options_on(tmp_path, capsys):
    md = tmp_path / "bench.md"
    assert cli.main(["bench"] + FAST + ["--frameworks", "numpy", "--markdown", str(md)]) == 0
    assert "lrn-core numpy" in capsys.readouterr().out
    assert md.read_text().startswith("# lrn-core bench")


@pytest.mark.parametrize("module", ["matplotlib", "pyperf", "threadpoolctl"])
def test_a_missing_library_is_a_clear_error(module, monkeypatch, tmp_path, capsys):
    """matplotlib for --plot, pyperf and threadpoolctl always: exit 2 naming it and the extra,
    before anything runs."""
    real = harness._installed
    monkeypatch.setattr(harness, "_installed", lambda m: m != module and real(m))
    monkeypatch.setattr(harness, "_run_suite", lambda *a, **k: pytest.fail("must not run"))
    plot = ["--plot", str(tmp_path / "x.png")] if module == "matplotlib" else []
    with pytest.raises(SystemExit) as exc:
        harness.main(FAST + plot)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"needs {module}: pip install 'lrn-core[bench]'" in err
    assert ("--plot needs" in err) == bool(plot)
    assert not (tmp_path / "x.png").exists()


def test_progress_is_pyperfs_output_on_stderr(capfd):
    """pyperf's line per row (its name, mean and standard deviation) goes to stderr, so that
    stdout keeps the report; --no-progress, nothing."""
    kw = {"frameworks": "numpy", "values": 2, "quick": True, "threads": 1}
    harness.run([TINY], **kw, progress=True)
    out, err = capfd.readouterr()
    assert f"2x{TINY} t=1: lrn-core numpy fwd+bwd: Mean +- std dev:" in err and out == ""
    harness.run([TINY], **kw, progress=False)
    assert capfd.readouterr() == ("", "")


def test_the_parent_leaves_its_thread_pools_alone():
    """Every thread count runs in a fresh child: the calling process's OpenMP pool keeps its
    size, and the child reports the count it ran."""
    from lrn_core._dispatch import kernels

    default = kernels().max_threads()
    res = harness.run([TINY], frameworks="numpy", values=2, quick=True, progress=False, threads=1)
    assert res.meta["threads_reported"] == {"1": {"lrn-core (OpenMP)": 1}}
    assert {r.threads for r in res.rows} == {1}
    assert kernels().max_threads() == default


def test_peak_extra_memory_sees_a_fresh_array():
    """The peak rises by what a call allocates and touches (128 MiB here), not by what it does
    not; None where the high-water mark cannot be reset (not Linux)."""
    import numpy as np

    if harness._peak_extra_mib(lambda: None) is None:
        pytest.skip("/proc/self/clear_refs is not available here")
    assert harness._peak_extra_mib(lambda: np.ones(2**24)) >= 120
    assert harness._peak_extra_mib(lambda: np.ones(16)) < 16


def test_plan_variants_and_shapes():
    cases = harness._plan(
        ["alexnet-conv1", "googlenet-lrn2"],
        32,
        ["size25", "sizes", "float64", "beta0.6", "nhwc", "small"],
        [2],
    )
    names = [(c.name, c.threads) for c in cases]
    assert names == [
        ("alexnet-conv1", 2),
        ("googlenet-lrn2", 2),
        ("alexnet-conv1 size=25", 2),  # once, though size25 and sizes both have it
        ("alexnet-conv1 size=9", 2),
        ("alexnet-conv1 size=13", 2),
        ("alexnet-conv1 size=32", 2),
        ("alexnet-conv1 float64", 2),
        ("alexnet-conv1 beta=0.6", 2),
        ("small 1x16x8x8", 1),
        ("small 1x16x8x8", 2),
    ]
    assert cases[0].shape == (32, 96, 55, 55) and cases[1].shape == (32, 192, 56, 56)
    assert cases[2].size == 25 and cases[6].dtype == "float64" and cases[7].beta == 0.6
    assert all(c.nhwc_core for c in cases)
    assert harness._parse_shape("4x8x3x3", 32) == ("4x8x3x3", (4, 8, 3, 3))
    with pytest.raises(ValueError, match="unknown shape"):
        harness._parse_shape("vgg", 32)


def test_bad_options(capsys):
    for args, text in (
        (["--threads", "0,2"], "threads must be integers >= 1, got '0,2'"),
        (["--threads", "two"], "threads must be integers >= 1, got 'two'"),
        (["--batch", "1,2"], "argument --batch: invalid int value: '1,2'"),
        (["--warmups", "-1"], "warmups (-1) >= 0"),
        (["--processes", "0"], "processes (0), values (3), loops (None) and batch (32) must be"),
    ):
        with pytest.raises(SystemExit) as exc:
            harness.main(args)
        assert exc.value.code == 2 and text in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown variant"):
        harness.run([TINY], variants=["fp8"], quick=True, progress=False)
    with pytest.raises(ValueError, match="unknown framework 'mxnet': use numpy, torch"):
        harness.run([TINY], frameworks="mxnet", quick=True, progress=False)
    with pytest.raises(SystemExit) as exc:
        harness.main(["--quick", "--shapes", "vgg", "--no-progress"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:  # an option neither ours nor pyperf's
        harness.main(FAST + ["--frameworks", "numpy", "--bogus"])
    assert exc.value.code == 2 and "pyperf: " in capsys.readouterr().err


def test_importing_the_harness_imports_no_framework():
    code = (
        "import sys, lrn_core.benchmarks.harness as h; h.build_parser(); "
        "print(','.join(m for m in ('torch', 'tensorflow', 'jax', 'matplotlib', 'pyperf') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_module_runs_as_a_script():
    """``python -m lrn_core.benchmarks.harness`` is the command line too (and, with --suite,
    pyperf's worker entry point, whatever started the run)."""
    cmd = [sys.executable, "-m", "lrn_core.benchmarks.harness", *FAST, "--frameworks", "numpy"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert out.startswith("# lrn-core bench\n") and "| lrn-core numpy | NCHW | fwd |" in out


def test_jax_rows_adapter_and_jitted_jnp():
    """JAX rows: the adapter and the jnp LRN a JAX user writes, both under jax.jit, NHWC."""
    pytest.importorskip("jax")
    res = harness.run([TINY], frameworks="jax", values=2, quick=True, progress=False)
    rows = {(r.impl, r.pass_): r for r in res.rows if r.framework == "jax"}
    assert set(rows) == {
        (impl, p)
        for impl in ("lrn-core jax adapter", "jax.jit jnp (native)")
        for p in ("fwd", "fwd+bwd")
    }
    for r in rows.values():
        assert r.ok, r.status
        assert r.layout == "NHWC" and r.median_ms > 0
    assert rows["lrn-core jax adapter", "fwd"].best_native == "jax.jit jnp (native)"
    assert res.meta["environment"]["jax"]
    import jax.numpy as jnp
    import numpy as np

    from lrn_core.adapters.jax import local_response_norm

    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 3, 9)), jnp.float32)
    np.testing.assert_allclose(
        check.jnp_lrn(x, 4, 0.5, 0.75, 1.5), local_response_norm(x, 4, 0.5, 0.75, 1.5), rtol=1e-6
    )
