"""Tests of scripts/bench.py: its table, its --quick run, and that its PyTorch
peers compute the same functions as plstm's cells."""

import importlib.util
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
      if cells[1] != "implementation":
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


@pytest.mark.slow
def test_quick_run_without_torch(monkeypatch, capsys):
  """What CI runs: every group, tiny shapes; the peers "not installed"."""
  monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
  text = bench.main(["--quick"])
  assert capsys.readouterr().out.strip() == text.strip()
  assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC; .*, \d+ cores; JAX", text)
  assert "torch -" in text
  rows = _rows(text)
  by_name = {}
  for row in rows:
    by_name.setdefault(row[1], []).append(row)
  for name in (
    "torch.nn.LSTM",
    "PyTorch Phased LSTM (loop)",
    "snnTorch RLeaky, Adam",
  ):
    assert by_name[name][0][3:6] == ["-", "-", "-"]
    assert by_name[name][0][6] == "not installed"
  assert by_name["jax.experimental.rnn (cuDNN)"][0][6] == "GPU only"
  timed = [
    "plstm.LSTM (plstm.scan)",
    "plstm.LSTM (plstm.scan, hoist=True)",
    "flax RNN(OptimizedLSTMCell)",
    "plstm.PhasedLSTM (plstm.scan)",
    "plstm.LSTM, peepholes (plstm.scan)",
    "plstm LSNN, Adam (no rewiring)",
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
