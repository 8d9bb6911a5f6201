"""Tests of scripts/bench.py: its tables and bars, its --quick run, and that
its PyTorch peers compute the same functions as plstm's cells."""

import importlib.util
import os
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plstm

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
_SPEC = importlib.util.spec_from_file_location("bench", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _rows(markdown: str) -> list[list[str]]:
  """The data rows of Markdown tables, as lists of stripped cells."""
  rows = []
  for line in markdown.splitlines():
    if line.startswith("|") and not line.startswith("| ---"):
      cells = [c.strip() for c in line.strip("|").split("|")]
      if cells[1] not in ("implementation", "models"):  # not a header
        rows.append(cells)
  return rows


def test_table_divides_each_row_by_its_blocks_first():
  rows = [
    bench.Timing("ours", 1.5, 0.2),
    bench.Timing("peer", None, 0.5),
    bench.Timing("gpu peer", None, None, "GPU only"),
  ]
  text = bench.table("lstm", [("B 8, T 10, I 1, H 4", rows)])
  ours, peer, gpu = _rows(text)
  assert ours[1:] == ["ours", "1.5", "200.0", "40.0", "1.00", ""]
  # 0.5 s per step of 8 sequences: 16 seq/s, 2.5x the time of the first.
  assert peer[1:] == ["peer", "-", "500.0", "16.0", "2.50", ""]
  assert gpu[1:] == ["gpu peer", "-", "-", "-", "-", "GPU only"]


def test_time_block_interleaves_the_rows_repeats():
  calls = []

  def make(name):
    return lambda: bench.Runner(0.5, lambda: calls.append(name))

  skipped = bench.Timing("peer", None, None, "not installed")
  rows = [
    bench.Job("a", make("a"), "note a"),
    skipped,
    bench.Job("b", make("b")),
  ]
  args = bench.parse(["--repeats=3", "--steps=2"])
  timings = bench._time_block(rows, args)
  # One warm-up step each, then 3 rounds of 2 steps of a, then of b.
  assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
  assert [t.name for t in timings] == ["a", "peer", "b"]
  assert timings[1] is skipped
  assert timings[0].compile_s == 0.5 and timings[0].note == "note a"
  assert timings[0].step_s >= 0 and timings[2].step_s >= 0


def test_parse_rejects_unknown_groups():
  assert bench.parse(["--quick"]).repeats == 1
  assert bench.parse([]).only == list(bench.GROUPS)
  with pytest.raises(SystemExit):
    bench.parse(["--only=lstm,gru"])


def test_cpu_devices_default_to_the_usable_cores():
  assert bench.parse([]).cpu_devices == len(os.sched_getaffinity(0))
  assert bench.parse(["--cpu_devices=1"]).cpu_devices == 1
  with pytest.raises(SystemExit):
    bench.parse(["--cpu_devices=0"])


def test_cpu_devices_refused_once_the_backend_runs():
  """conftest's 2 devices are running: another count is one clear error."""
  assert len(jax.devices()) == 2
  with pytest.raises(SystemExit, match="already started with 2"):
    bench.main(["--quick", "--only=sparse", "--cpu_devices=3"])


def test_data_mesh_splits_the_batch_over_the_devices_that_divide_it():
  mesh, note = bench.data_mesh(4)
  assert mesh.shape == {"model": 1, "data": 2} and note == ""
  mesh, note = bench.data_mesh(3)
  assert mesh.shape == {"model": 1, "data": 1}
  assert note == "B 3 does not divide over 2 devices: split over 1 device"


def test_lstm_bars_compare_like_with_like():
  def block(ours, flax, torch):
    f = bench.FLAX_LSTM
    return [
      bench.Timing("plstm.LSTM, 2 devices", 1.0, ours),
      bench.Timing(f"{f}, 2 devices", 1.0, flax),
      bench.Timing("plstm.LSTM, 1 device", 1.0, 0.9),
      bench.Timing(f"{f}, 1 device", 1.0, 1.8),
      bench.Timing("plstm.LSTM, 2 devices, bfloat16", 1.0, ours / 2),
      bench.Timing(f"{f}, 2 devices, bfloat16", 1.0, flax),
      bench.Timing("plstm.LSTM, 1 device, bfloat16", None, None, "gone"),
      bench.Timing(f"{f}, 1 device, bfloat16", 1.0, 1.0),
      bench.Timing(bench.TORCH_LSTM, None, torch, "" if torch else "gone"),
    ]

  text = bench.lstm_report(
    "lstm",
    [("B 8, T 4, I 1, H 2", block(0.2, 0.3, 0.25)), ("B 4", block(1, 1, None))],
  )
  bars = text.split("\n\n")[-1].splitlines()
  f = "flax RNN(OptimizedLSTMCell)"
  assert bars[1:9] == [
    "- B 8, T 4, I 1, H 2:",
    f"  - plstm.LSTM, 2 devices vs {f}, 2 devices: 1.50x (met)",
    f"  - plstm.LSTM, 1 device vs {f}, 1 device: 2.00x (met)",
    f"  - plstm.LSTM, 2 devices, bfloat16 vs {f}, 2 devices, bfloat16: 3.00x "
    "(met)",
    f"  - plstm.LSTM, 1 device, bfloat16 vs {f}, 1 device, bfloat16: not run "
    "(gone)",
    "  - plstm.LSTM, 2 devices vs torch.nn.LSTM: 1.25x (not met)",
    "  - plstm.LSTM, 2 devices, bfloat16 vs plstm.LSTM, 2 devices: 2.00x (met)",
    "- B 4:",
  ]
  assert (
    bars[9] == f"  - plstm.LSTM, 2 devices vs {f}, 2 devices: 1.00x (not met)"
  )
  assert (
    bars[13] == "  - plstm.LSTM, 2 devices vs torch.nn.LSTM: not run (gone)"
  )


def test_sweep_report_divides_model_steps_by_the_sequential_runs():
  def row(k, step_s, note=""):
    return bench.SweepRow(k, bench.Timing(f"K = {k}", 2.0, step_s, note))

  tables = [
    ("freq_task: B 8", [row(1, 0.1), row(4, 0.2), row(16, 0.5)]),
    ("store_recall: B 4", [row(1, 0.1), row(16, None, "not run")]),
    ("quick: B 2", [row(1, 0.1), row(4, 0.1)]),
  ]
  text = bench.sweep_report("sweep", tables)
  rows = _rows(text)
  # K / s per step: 10, 20 and 32 model-steps/s, 1, 2 and 3.2x the first.
  assert [r[3:6] for r in rows[:3]] == [
    ["100.0", "10.0", "1.00"],
    ["200.0", "20.0", "2.00"],
    ["500.0", "32.0", "3.20"],
  ]
  assert rows[4][3:7] == ["-", "-", "-", "not run"]
  assert text.splitlines()[-1] == (
    "Bar: K = 16 packed models >= 2x the model-steps/s of 16 sequential "
    "runs (cpu): freq_task: 3.20x (met); store_recall: K = 16 not timed; "
    "quick: K = 16 not run (--quick)."
  )


@pytest.mark.slow
def test_quick_run_without_torch(monkeypatch, capsys):
  """What CI runs: every group, tiny shapes; the peers "not installed"."""
  monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
  text = bench.main(["--quick", "--cpu_devices=2"])  # conftest's
  assert capsys.readouterr().out.strip() == text.strip()
  assert re.match(
    r"\d{4}-\d\d-\d\d \d\d:\d\d UTC; .*, \d+ cores; JAX on 2 cpu devices",
    text,
  )
  assert "torch -" in text
  rows = _rows(text)
  by_name = {}
  for row in rows:
    by_name.setdefault(row[1], []).append(row)
  for name in (
    "torch.nn.LSTM",
    "PyTorch Phased LSTM (loop)",
    "snnTorch RLeaky, Adam",
    "snnTorch RLeaky (no delays), Adam",
  ):
    assert by_name[name][0][3:6] == ["-", "-", "-"]
    assert by_name[name][0][6] == "not installed"
  assert by_name["jax.experimental.rnn (cuDNN)"][0][6] == "GPU only"
  # Each group's first row: plstm on both devices, `vs` 1 by definition.
  parallel = [
    "plstm.LSTM, 2 devices",
    "plstm.PhasedLSTM, 2 devices",
    "plstm LSNN, Adam (no rewiring), 2 devices",
  ]
  lines = text.splitlines()
  firsts = [
    _rows(lines[i + 1])[0][1]
    for i, line in enumerate(lines)
    if line.startswith("| ---")
  ]
  for name in parallel:
    assert name in firsts and by_name[name][0][5] == "1.00"
  timed = parallel + [
    "plstm.LSTM, 1 device",
    "plstm.LSTM, 1 device, hoist=True",
    "flax RNN(OptimizedLSTMCell), 2 devices",
    "flax RNN(OptimizedLSTMCell), 1 device",
    "plstm.LSTM, 2 devices, bfloat16",
    "plstm.LSTM, 1 device, bfloat16",
    "flax RNN(OptimizedLSTMCell), 2 devices, bfloat16",
    "flax RNN(OptimizedLSTMCell), 1 device, bfloat16",
    "plstm.PhasedLSTM, 1 device",
    "plstm.PhasedLSTM, 2 devices, bfloat16",
    "plstm.PhasedLSTM, 1 device, bfloat16",
    "plstm LSNN, Adam (no rewiring), 2 devices, bfloat16",
    "plstm.LSTM, peepholes, 1 device",
    "plstm LSNN, Adam (no rewiring), 1 device",
    "plstm LSNN, learned delays, Adam (no rewiring), 1 device",
    "plstm LSNN, learned delays, 1 device",
    "plstm LSNN, fixed delays, 1 device",
    "plstm LSNN, no delays, 2 devices",
    "plstm LSNN, no delays, 1 device",
    "plstm.sparse.scan",
    "plstm.scan (dense)",
    "remat_chunk=10",
    "remat_chunk=20",
  ]
  for name in timed:
    for row in by_name[name]:
      assert float(row[2]) > 0 and float(row[3]) > 0, row  # compile, ms
  # Plain scan at the long T: compiled for its memory, not run.
  assert by_name["plstm.scan"][1][3] == "-"
  assert "not run" in by_name["plstm.scan"][1][6]
  # The bars below the lstm table: Flax's time over ours, like with like.
  for devices in ("2 devices", "1 device"):
    for precision in ("", ", bfloat16"):
      ours = by_name[f"plstm.LSTM, {devices}{precision}"][0]
      flax = by_name[f"flax RNN(OptimizedLSTMCell), {devices}{precision}"][0]
      ratio = float(ours[4]) / float(flax[4])  # our seq/s over theirs
      bar = re.search(
        rf"^  - plstm.LSTM, {devices}{precision} vs flax "
        rf"RNN\(OptimizedLSTMCell\), {devices}{precision}: ([\d.]+)x "
        r"\((met|not met)\)$",
        text,
        re.MULTILINE,
      )
      assert bar and float(bar[1]) == pytest.approx(ratio, rel=0.02, abs=0.01)
      assert bar[2] == ("met" if float(bar[1]) >= 1.3 else "not met")
  assert "  - plstm.LSTM, 2 devices vs torch.nn.LSTM: not run (not " in text
  # The delay bars: fixed delays' s/step over learned ones', each group.
  for fixed, learned in (
    (
      "plstm LSNN, Adam (no rewiring), 1 device",
      "plstm LSNN, learned delays, Adam (no rewiring), 1 device",
    ),
    (
      "plstm LSNN, fixed delays, 1 device",
      "plstm LSNN, learned delays, 1 device",
    ),
  ):
    # Learned seq/s over fixed seq/s (the ms column is rounded to 0.1 ms).
    ratio = float(by_name[learned][0][4]) / float(by_name[fixed][0][4])
    bar = re.search(
      rf": {re.escape(learned)} vs {re.escape(fixed)}: ([\d.]+)x "
      r"\((met|not met)\)$",
      text,
      re.MULTILINE,
    )
    assert bar and float(bar[1]) == pytest.approx(ratio, rel=0.1, abs=0.02)
    assert bar[2] == ("met" if float(bar[1]) >= 1 / 1.2 else "not met")
  # The sweep: one unpacked model, then 4 packed, on each task.
  sweep = [r for r in rows if r[1].startswith("K = ")]
  assert [(r[0].split(":")[0], r[1]) for r in sweep] == [
    (task, k)
    for task in ("freq_task", "store_recall")
    for k in ("K = 1, no pack (a sequential run)", "K = 4 packed")
  ]
  for row in sweep:
    compile_s, ms, rate, ratio = map(float, row[2:6])
    assert compile_s > 0 and ms > 0
    k = 1 if "K = 1" in row[1] else 4
    assert rate == pytest.approx(1e3 * k / ms, rel=0.05)
  assert [r[5] for r in sweep[::2]] == ["1.00", "1.00"]
  assert text.rstrip().endswith(
    "(cpu): freq_task: K = 16 not run (--quick); store_recall: K = 16 not "
    "run (--quick)."
  )


@pytest.fixture
def torch():
  return pytest.importorskip("torch", reason="the PyTorch peers need torch")


def test_torch_phased_lstm_is_plstms_phased_lstm(torch):
  b, t, i, h = 3, 30, 2, 6
  cell = plstm.PhasedLSTM(h, tau_range=(2.0, 8.0), r_on=0.2)
  params = cell.init(jax.random.key(0), i)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(b, t, i)).astype(np.float32)
  times = np.cumsum(rng.uniform(0.3, 1.7, (b, t)), 1).astype(np.float32)
  _, expected = plstm.scan(cell, params, (x, times), training=True)
  module = bench.torch_phased_lstm_module(torch)(i, h).load(params)
  with torch.no_grad():
    actual = module(torch.from_numpy(x), torch.from_numpy(times)).numpy()
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
  assert np.std(actual[:, -1]) > 0.01


def test_torch_lstm_is_plstms_lstm(torch):
  """torch.nn.LSTM's gate order is plstm's (i, f, g, o): the rows compare
  one function."""
  b, t, i, h = 2, 15, 3, 4
  cell = plstm.LSTM(h)
  params = cell.init(jax.random.key(0), i)
  params["b"] = jnp.linspace(-1.0, 1.0, 4 * h)
  x = np.random.default_rng(1).normal(size=(b, t, i)).astype(np.float32)
  _, expected = plstm.scan(cell, params, x)
  lstm = torch.nn.LSTM(i, h, batch_first=True)
  with torch.no_grad():
    for name, value in (
      ("weight_ih_l0", params["w_x"].T),
      ("weight_hh_l0", params["w_h"].T),
      ("bias_ih_l0", params["b"]),
      ("bias_hh_l0", jnp.zeros(4 * h)),
    ):
      getattr(lstm, name).copy_(torch.from_numpy(np.array(value)))
    actual, _ = lstm(torch.from_numpy(x))
  np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-5, atol=1e-6)
