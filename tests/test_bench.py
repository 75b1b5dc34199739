"""The benchmark harness behind ``lrn-core bench``: its rows, pyperf's results and the reports.

Tiny shapes, one pyperf worker per row with few values; no assertion on any timing (the machines
are shared and noisy). torch.compile is never run here (it compiles for tens of seconds).
"""

import importlib.util
import subprocess
import sys

import pytest

from lrn_core import check, cli
from lrn_core.benchmarks import harness

TINY = "8x6x6"  # C x H x W; the batch comes from --batch / quick (2)
FAST = ["--quick", "--shapes", TINY, "--values", "2", "--no-compile", "--no-progress"]
QUICK = {"quick": True, "progress": False, "pyperf": ["--values=3"]}


def _installed(name):
    return importlib.util.find_spec(name) is not None


def test_run_numpy_rows_and_ratios():
    res = harness.run([TINY], frameworks="numpy", threads=1, **QUICK)
    assert [(r.impl, r.pass_) for r in res.rows] == [
        ("copy floor (numpy.copyto)", "copy"),
        ("lrn-core numpy", "fwd"),
        ("lrn-core numpy", "bwd"),
        ("lrn-core numpy", "fwd+bwd"),
    ]
    copy = res.rows[0]
    for r in res.rows:
        assert r.ok, r.status
        assert (r.case, r.threads, r.omp_threads) == (f"2x{TINY}", 1, 1)
        values = sorted(r.bench.get_values())
        assert len(values) == 3 and r.bench.get_loops() == 1  # --quick: -p 1 -l 1, here -n 3
        assert r.median_ms == pytest.approx(values[1] * 1e3)  # pyperf's median
        assert r.median_ms <= r.p90_ms <= values[-1] * 1e3
        assert r.x_copy == pytest.approx(r.median_ms / copy.median_ms)
        assert r.x_native is None  # no native requested
    assert res.settings["frameworks"] == ["numpy"] and "--values=3" in res.settings["pyperf"]
    # the result is pyperf's own suite, read back by rows()
    again = harness.rows(res.suite)
    assert [r.median_ms for r in again] == [r.median_ms for r in res.rows]


def test_ratios_are_within_a_case(tmp_path):
    """x native = median / fastest native median of the same case and pass; x copy = median /
    copy floor; both read from a pyperf suite."""
    import pyperf

    def bench(case, impl, kind, pass_, ms):
        meta = dict(zip(harness.KEYS, (case, "h", 1, impl, kind, pass_), strict=True))
        meta = {f"lrn_{k}": v for k, v in meta.items()} | {"name": f"{case} {impl} {pass_}"}
        run = pyperf.Run([ms / 1e3] * 3, metadata={**meta, "lrn_status": "ok", "loops": 1})
        return pyperf.Benchmark([run])

    suite = pyperf.BenchmarkSuite(
        [
            bench("a", "copy floor (numpy.copyto)", "copy", "copy", 2.0),
            bench("a", "lrn-core numpy", "core", "fwd", 4.0),
            bench("a", "torch eager (native)", "native", "fwd", 40.0),
            bench("a", "tf native", "native", "fwd", 20.0),
            bench("b", "copy floor (numpy.copyto)", "copy", "copy", 1.0),
            bench("b", "lrn-core numpy", "core", "fwd", 4.0),
            bench("b", "torch eager (native)", "native", "fwd", 8.0),
        ]
    )
    rows = harness.rows(suite)
    assert rows[1].x_copy == pytest.approx(2.0) and rows[1].x_native == pytest.approx(0.2)
    assert rows[2].x_native == pytest.approx(2.0) and rows[3].x_native == pytest.approx(1.0)
    assert rows[5].x_copy == pytest.approx(4.0) and rows[5].x_native == pytest.approx(0.5)
    text = harness.markdown(rows, {"pyperf": "", "pyperf_version": "x", "environment": "e"})
    assert text.count("| " + " | ".join(harness.COLUMNS) + " |") == 2  # one table per case
    assert "| lrn-core numpy | fwd | 4.000 | 4.000 | 1.00 | 0.20 | 2.00 |  |" in text


def test_main_quick_writes_markdown_and_pyperf_json(tmp_path, capsys):
    import pyperf

    md, js = tmp_path / "bench.md", tmp_path / "bench.json"
    argv = FAST + ["--frameworks", "numpy,torch,tf", "--markdown", str(md), "--json", str(js)]
    assert harness.main(argv) == 0
    out = capsys.readouterr().out
    for text in (
        "| implementation | pass | median ms | p90 ms | p90/median | x native | x copy",
        "copy floor (numpy.copyto)",
        "lrn-core numpy",
        "pyperf",
        "--values 2",
        f"wrote {md}",
        f"wrote {js}",
    ):
        assert text in out
    rows = harness.rows(pyperf.BenchmarkSuite.load(str(js)))  # pyperf's own file
    impls = {r.impl for r in rows}
    assert {"copy floor (numpy.copyto)", "lrn-core numpy"} <= impls
    assert not {"torch.compile (native)", "torch.compile(adapter)"} & impls
    if _installed("torch"):
        eager = [r for r in rows if r.impl == "torch eager (native)"]
        assert [r.pass_ for r in eager] == ["fwd", "fwd+bwd"]
        assert all(r.ok and r.bench.get_nvalue() == 2 for r in eager)
        core = [r for r in rows if r.impl == "lrn-core numpy" and r.pass_ != "bwd"]
        for r in core:  # torch's and TensorFlow's natives: the fastest of the same pass
            native = min(n.median_ms for n in rows if n.kind == "native" and n.pass_ == r.pass_)
            assert r.x_native == pytest.approx(r.median_ms / native)
    if _installed("tensorflow"):
        tf_rows = [r for r in rows if r.impl.startswith("tf native")]
        assert {r.bench.get_metadata()["lrn_layout"] for r in tf_rows} == {"NHWC"}
        assert len(tf_rows) == 4 and all(r.ok for r in tf_rows)  # tf.function and eager
    for r in rows:  # an adapter may still be missing, but nothing else may fail
        assert r.ok or r.status.startswith("n/a"), r
    text = md.read_text()
    assert text.startswith("# lrn-core bench\n") and text == out.split("wrote ")[0]
    assert text.count("\n## ") == 1 and f"## 2x{TINY}: 2x{TINY} float32, size 5" in text


def test_threads_run_in_worker_processes():
    """pyperf's workers get OMP_NUM_THREADS of their row; the split copy (--variants
    copy-threads) uses as many Python threads; the parent's pool keeps its size."""
    from lrn_core._dispatch import kernels

    default = kernels().max_threads()
    res = harness.run([TINY], frameworks="numpy", threads="1,2", variants="copy-threads", **QUICK)
    assert {r.threads for r in res.rows} == {1, 2}
    split = [r for r in res.rows if r.impl == "copy split over the threads"]
    assert [r.threads for r in split] == [1, 2] and all(r.ok for r in split)
    assert all(r.omp_threads == r.threads for r in res.rows)
    assert not [n for n in res.notes if "threads" in n]
    assert kernels().max_threads() == default


def test_ladder_runs_the_four_shapes_of_issue_25():
    """--variants ladder: exactly 1x16x8x8, 4x64x16x16, 8x96x27x27, 32x96x55x55, every route
    (torch.compile too, unless --no-compile), fwd and fwd+bwd. Only planned here."""
    plan = harness._plan(None, 32, [1], list(harness.FRAMEWORKS), ["ladder"], True, False)
    cases = list(dict.fromkeys(t["meta"]["lrn_case"] for t in plan))
    assert cases == ["1x16x8x8", "4x64x16x16", "8x96x27x27", "32x96x55x55"]
    routes = {(t["meta"]["lrn_impl"], t["meta"]["lrn_pass"]) for t in plan}
    for impl in harness.IMPLS:
        if impl.only in (None, "compile"):
            for p in ("copy",) if impl.kind == "copy" else ("fwd", "fwd+bwd"):
                assert (impl.label, p) in routes
    assert len(plan) == 4 * len({(t["meta"]["lrn_impl"], t["meta"]["lrn_pass"]) for t in plan})


def test_plan_variants_and_shapes():
    variants = ["sizes", "float64", "beta0.6", "nhwc"]
    plan = harness._plan(["alexnet-conv1", "googlenet-lrn2"], 32, [2], ["numpy"], variants, 0, 0)
    cases = {t["meta"]["lrn_case"]: t["case"] for t in plan}
    assert list(cases) == [
        "alexnet-conv1",
        "googlenet-lrn2",
        "alexnet-conv1 size=9",
        "alexnet-conv1 size=13",
        "alexnet-conv1 size=25",
        "alexnet-conv1 size=32",
        "alexnet-conv1 dtype=float64",
        "alexnet-conv1 beta=0.6",
    ]
    assert cases["alexnet-conv1"]["shape"] == (32, 96, 55, 55)
    assert cases["alexnet-conv1 beta=0.6"]["beta"] == 0.6
    assert all(c["threads"] == 2 for c in cases.values())
    assert "lrn-core numpy NHWC" in {t["meta"]["lrn_impl"] for t in plan}
    assert harness._shape("4x8x3x3", 32) == ("4x8x3x3", (4, 8, 3, 3))
    with pytest.raises(ValueError, match="unknown shape"):
        harness._shape("vgg", 32)


def test_worker_processes_ignore_modules_in_the_working_directory(tmp_path, monkeypatch):
    """A script in the current directory named like a module the workers import must not
    shadow it (``python -m`` puts the current directory first on sys.path)."""
    (tmp_path / "statistics.py").write_text("raise ImportError('the stray statistics.py')\n")
    monkeypatch.chdir(tmp_path)
    res = harness.run([TINY], frameworks="numpy", threads=1, **QUICK)
    assert res.rows and all(r.ok for r in res.rows)


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
    assert "| lrn-core numpy | fwd |" in capsys.readouterr().out
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
    """pyperf's line per row goes to stderr, so that stdout keeps the report; --no-progress,
    nothing."""
    kw = {"frameworks": "numpy", "quick": True, "threads": 1, "pyperf": ["-n", "2"]}
    harness.run([TINY], **kw, progress=True)
    out, err = capfd.readouterr()
    assert f"2x{TINY} t=1: lrn-core numpy fwd+bwd: Mean +- std dev:" in err and out == ""
    harness.run([TINY], **kw, progress=False)
    assert capfd.readouterr() == ("", "")


def test_peak_extra_memory_sees_a_fresh_array():
    """The peak rises by what a call allocates and touches (128 MiB here), not by what it does
    not; None where the high-water mark cannot be reset (not Linux)."""
    import numpy as np

    if harness._peak_extra_mib(lambda: None) is None:
        pytest.skip("/proc/self/clear_refs is not available here")
    assert harness._peak_extra_mib(lambda: np.ones(2**24)) >= 120
    assert harness._peak_extra_mib(lambda: np.ones(16)) < 16


def test_bad_options(capsys):
    monkey = {"--processes 0": "pyperf: ", "--warmups -1": "pyperf: ", "--bogus": "pyperf: "}
    for args, text in (
        (["--threads", "0,2"], "threads and batch must be integers >= 1, got '0,2' and 2"),
        (["--threads", "two"], "threads and batch must be integers >= 1, got 'two' and 2"),
        (["--batch", "1,2"], "argument --batch: invalid int value: '1,2'"),
        (["--shapes", "vgg"], "unknown shape 'vgg': use one of alexnet-conv1"),
        (["--variants", "fp8"], "unknown variant 'fp8': use ladder, sizes"),
        (["--frameworks", "mxnet"], "unknown framework 'mxnet': use numpy, torch"),
        (["-o", "x.json"], "pyperf's -o/--output is the harness's own: use --json FILE"),
        *((["--frameworks", "numpy", *a.split()], t) for a, t in monkey.items()),
    ):
        with pytest.raises(SystemExit) as exc:
            harness.main(FAST[:-3] + ["--no-progress", *args])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and text in err, (args, err)
    with pytest.raises(TypeError, match="unknown options"):
        harness.run([TINY], values=3)


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
    assert out.startswith("# lrn-core bench\n") and "| lrn-core numpy | fwd |" in out


def test_jax_rows_adapter_and_jitted_jnp():
    """JAX rows: the adapter and the jnp LRN a JAX user writes, both under jax.jit, NHWC."""
    pytest.importorskip("jax")
    res = harness.run([TINY], frameworks="jax", threads=1, **QUICK)
    rows = {(r.impl, r.pass_): r for r in res.rows if r.kind != "copy" and "jax" in r.impl}
    assert set(rows) == {
        (impl, p)
        for impl in ("lrn-core jax adapter", "jax.jit jnp (native)")
        for p in ("fwd", "fwd+bwd")
    }
    for r in rows.values():
        assert r.ok, r.status
        assert r.bench.get_metadata()["lrn_layout"] == "NHWC" and r.median_ms > 0
    fwd = rows["lrn-core jax adapter", "fwd"]
    assert fwd.x_native == pytest.approx(
        fwd.median_ms / rows["jax.jit jnp (native)", "fwd"].median_ms
    )
    assert "jax" in res.settings["environment"]
    import jax.numpy as jnp
    import numpy as np

    from lrn_core.adapters.jax import local_response_norm

    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 3, 9)), jnp.float32)
    np.testing.assert_allclose(
        check.jnp_lrn(x, 4, 0.5, 0.75, 1.5), local_response_norm(x, 4, 0.5, 0.75, 1.5), rtol=1e-6
    )
