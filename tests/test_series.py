"""Series forecasting with online SGD (experiments/series.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import series as series_config
from experiments import series


def test_synthetic_series_by_hand():
  t = np.arange(100.0)
  # A pure trend.
  np.testing.assert_allclose(
    series.synthetic(0, 100, (), (), 2.0, 0.0), 2.0 * t / 100
  )
  # One sine with the seed's phase.
  phase = np.random.default_rng([3, 0]).uniform(0.0, 2 * np.pi, 1)[0]
  np.testing.assert_allclose(
    series.synthetic(3, 100, (25.0,), (0.5,), 0.0, 0.0),
    0.5 * np.sin(2 * np.pi * t / 25 + phase),
    atol=1e-12,
  )
  # The noise has the asked std and depends on the seed only.
  a = series.synthetic(0, 5000, (), (), 0.0, 0.3)
  np.testing.assert_allclose(a.std(), 0.3, rtol=0.05)
  np.testing.assert_array_equal(a, series.synthetic(0, 5000, (), (), 0.0, 0.3))
  assert not np.array_equal(a, series.synthetic(1, 5000, (), (), 0.0, 0.3))


def test_load_csv_column_with_and_without_header(tmp_path):
  rows = np.arange(12.0).reshape(4, 3)
  plain = tmp_path / "plain.csv"
  np.savetxt(plain, rows, delimiter=",")
  np.testing.assert_array_equal(series.load_csv(str(plain), 1), rows[:, 1])
  named = tmp_path / "named.csv"
  np.savetxt(named, rows, delimiter=",", header="a,b,c", comments="")
  np.testing.assert_array_equal(series.load_csv(str(named), 2), rows[:, 2])
  with pytest.raises(
    ValueError, match=r"config.data.column must be in \[0, 3\)"
  ):
    series.load_csv(str(named), 3)
  bad = tmp_path / "bad.csv"
  bad.write_text("1,2\n3,x\n")
  with pytest.raises(ValueError, match=r"bad.csv', line 2, column 1 holds 'x'"):
    series.load_csv(str(bad), 1)


def test_missing_csv_names_the_flag():
  with pytest.raises(ValueError, match=r"config.data.csv: no file '/nope.csv'"):
    series.load_csv("/nope.csv", 0)


def _csv_config(tmp_path, values):
  path = tmp_path / "series.csv"
  np.savetxt(path, np.stack([np.zeros_like(values), values], 1), delimiter=",")
  config = series_config.get_config("smoke")
  config.data.csv = str(path)
  config.data.column = 1
  return config


def test_csv_series_is_standardised_on_its_training_part(tmp_path):
  values = np.random.default_rng(0).normal(5.0, 3.0, 300)
  config = _csv_config(tmp_path, values)
  np.testing.assert_array_equal(series.series(config), values)
  z, n = series.standardised(config)
  assert n == 240 and z.dtype == np.float32
  np.testing.assert_allclose(z[:n].mean(), 0.0, atol=1e-6)
  np.testing.assert_allclose(z[:n].std(), 1.0, rtol=1e-5)
  np.testing.assert_allclose(
    z, (values - values[:n].mean()) / values[:n].std(), rtol=1e-5
  )


def _lines(values=None) -> list[str]:
  """A CSV file's lines: a header and 60 rows "t,value"."""
  if values is None:
    values = np.sin(np.arange(60) / 3)
  return ["t,value"] + [f"{t},{v:.4f}" for t, v in enumerate(values)]


def _replace(index: int, line: str):
  return lambda lines: lines[:index] + [line] + lines[index + 1 :]


@pytest.mark.parametrize(
  "edit,match",
  [
    (_replace(11, "10,nan"), r"line 12, column 1 holds 'nan', not a finite"),
    (_replace(11, "10,-inf"), r"line 12, column 1 holds '-inf', not a finite"),
    (_replace(11, "10,n/a"), r"line 12, column 1 holds 'n/a', not a finite"),
    (_replace(11, "10,"), r"line 12, column 1 holds nothing, not a finite"),
    (_replace(11, "10, "), r"line 12, column 1 holds nothing, not a finite"),
    (_replace(11, ""), r"line 12 is blank; remove it or fill it in"),
    (_replace(11, " ,"), r"line 12 is blank; remove it or fill it in"),
    (_replace(11, "10"), r"line 12 ends before column 1 \(config.data.column"),
    # A missing first value is not taken for a header.
    (lambda lines: ["0,"] + lines[2:], r"line 1, column 1 holds nothing"),
    (lambda lines: [], r"is empty"),
    (
      lambda lines: _lines(np.full(60, 3.5)),
      r"column 1 of '.*' is constant \(3.5\) over its 48 training values",
    ),
    (
      lambda lines: _lines(np.full(60, 3.5))[:49] + lines[49:],
      r"is constant \(3.5\) over its 48 training values",
    ),
    (
      lambda lines: lines[:21],
      r"has 20 values: 16 to train, .* and 4 to validate \(it needs "
      r"eval_batch_size = 8\)",
    ),
  ],
  ids=[
    "nan",
    "inf",
    "text",
    "empty-cell",
    "space",
    "blank-line",
    "blank-cells",
    "short-row",
    "first-row",
    "empty-file",
    "constant",
    "constant-training-part",
    "too-short",
  ],
)
def test_bad_csv_is_named_by_file_line_and_column(tmp_path, edit, match):
  path = tmp_path / "bad.csv"
  path.write_text("\n".join(edit(_lines())) + "\n")
  config = series_config.get_config("smoke")
  config.data.csv, config.data.column = str(path), 1
  with pytest.raises(ValueError, match=match) as error:
    series.make_task(config)
  message = str(error.value)
  assert "\n" not in message and repr(str(path)) in message


@pytest.mark.parametrize("end", ["", "\n", "\n\n", "\r\n", "\n \n"])
def test_blank_lines_at_the_end_are_fine(tmp_path, end):
  path = tmp_path / "ok.csv"
  path.write_text("\n".join(_lines()) + end)
  np.testing.assert_allclose(
    series.load_csv(str(path), 1), np.sin(np.arange(60) / 3), atol=1e-4
  )


def test_a_byte_order_mark_is_not_a_header(tmp_path):
  path = tmp_path / "excel.csv"
  path.write_bytes(b"\xef\xbb\xbf1.5\n2.5\n")
  np.testing.assert_array_equal(series.load_csv(str(path), 0), [1.5, 2.5])


def test_binary_file_is_named(tmp_path):
  path = tmp_path / "series.csv.gz"
  path.write_bytes(b"\x1f\x8b\x08\x00")
  with pytest.raises(ValueError, match=r"series.csv.gz' is not a UTF-8 CSV"):
    series.load_csv(str(path), 0)


def test_too_few_windows_for_a_shuffled_batch(tmp_path):
  config = _csv_config(tmp_path, np.arange(300.0))
  config.data.batch_size = 236
  with pytest.raises(
    ValueError, match=r"235 windows of window = 5 \(it needs 236\)"
  ):
    series.make_task(config)
  config.data.shuffle = False  # In order, windows repeat within a batch.
  series.make_task(config)


def test_windows_and_targets(tmp_path):
  config = _csv_config(tmp_path, np.arange(300.0) ** 1.5)
  z, n = series.standardised(config)
  w = config.data.window
  task = series.make_task(config)
  key = jax.random.key(0)
  batch = task.train_batch(key, 5)
  assert batch["window"].shape == (config.data.batch_size, w)
  for window, target in zip(batch["window"], batch["target"], strict=True):
    (t,) = np.flatnonzero(z == target)
    assert w <= t < n
    np.testing.assert_array_equal(window, z[t - w : t])
  np.testing.assert_array_equal(
    batch["window"], task.train_batch(key, 5)["window"]
  )
  other = task.train_batch(jax.random.key(1), 5)["target"]
  assert not np.array_equal(batch["target"], other)
  evals = task.eval_batches(jax.random.key(1), 0)
  assert len(evals) == (300 - n) // config.data.eval_batch_size
  first = np.flatnonzero(z == evals[0]["target"][0])[0]
  assert first == n


def test_in_order_batches_are_the_notebook_pass(tmp_path):
  config = _csv_config(tmp_path, np.arange(300.0) ** 1.5)
  config.data.shuffle = False
  config.data.batch_size = 1
  z, n = series.standardised(config)
  w = config.data.window
  task = series.make_task(config)
  num_windows = n - w
  for step, t in (
    (0, w),
    (1, w + 1),
    (num_windows - 1, n - 1),
    (num_windows, w),
  ):
    np.testing.assert_array_equal(
      task.train_batch(jax.random.key(0), step)["target"], z[t]
    )


def test_persistence_is_the_zero_head_and_metrics_by_hand():
  config = series_config.get_config("smoke")
  task = series.make_task(config)
  cell = series.make_cell(config.model)
  key = jax.random.key(0)
  params = task.init(key, key)
  batch = task.train_batch(key, 0)
  window, target = np.asarray(batch["window"]), np.asarray(batch["target"])
  persistence = window[:, -1] - target
  loss, metrics = task.loss(params, batch, None, training=True)
  np.testing.assert_allclose(
    metrics["persistence_mse"], np.mean(persistence**2), 1e-6
  )
  error = np.asarray(series.predict(cell, params, batch["window"])) - target
  np.testing.assert_allclose(loss, np.mean(error**2), rtol=1e-6)
  np.testing.assert_allclose(metrics["mse"], np.mean(error**2), rtol=1e-6)
  assert set(metrics) == {"loss", "mse", "persistence_mse"}
  params["head"] = jax.tree.map(jnp.zeros_like, params["head"])
  zero_loss, _ = task.loss(params, batch, None, training=True)
  np.testing.assert_allclose(zero_loss, metrics["persistence_mse"], rtol=1e-6)
  # A constant shift of the window moves the forecast by the same amount.
  shifted = series.predict(cell, params, batch["window"] + 3.0)
  np.testing.assert_allclose(shifted, window[:, -1] + 3.0, rtol=1e-6)


def test_notebook_init():
  config = series_config.get_config("paper")
  key = jax.random.key(0)
  params = series.make_task(config).init(key, key)
  w = np.concatenate(
    [params["rnn"]["w_x"].ravel(), params["rnn"]["w_h"].ravel()]
  )
  np.testing.assert_allclose(w.std(), 0.01, rtol=0.1)
  np.testing.assert_array_equal(params["rnn"]["b"], 0.0)
  assert config.data.batch_size == 1 and not config.data.shuffle
  assert (
    config.optimizer.name == "sgd" and config.optimizer.learning_rate == 0.01
  )
  assert config.optimizer.clip == "none"
  windows = (
    int(config.data.train_fraction * config.data.length) - config.data.window
  )
  assert config.num_epochs * config.steps_per_epoch == windows


def test_too_short_a_series_is_reported(tmp_path):
  config = _csv_config(tmp_path, np.arange(20.0))
  with pytest.raises(
    ValueError, match=r"config.data: column 1 of '.*series.csv' has 20 values"
  ):
    series.make_task(config)
