"""The superimposed-frequency task (experiments/freq_combo_task.py)."""

import jax
import numpy as np
import pytest

from configs import freq_combo_task as combo_config
from experiments import freq_combo_task as combo


def _draw(batch_size, two_pi=False):
  """A batch and the wave parameters it was drawn from, as `sample` does."""
  key = jax.random.key(0)
  k_waves, _ = jax.random.split(key)
  waves = combo.draw_waves(k_waves, batch_size)
  batch = combo.sample(key, batch_size, two_pi)
  return jax.device_get(waves), jax.device_get(batch)


@pytest.fixture(scope="module")
def big():
  return _draw(512)


def test_batches_are_left_padded_sorted_and_in_range(big):
  waves, b = big
  assert b["x"].shape == (512, 1000, 1)
  assert b["t"].shape == b["mask"].shape == (512, 1000)
  m, t = b["mask"], b["t"]
  assert np.all(m[:, -1])
  assert np.all(np.diff(m.astype(int), axis=1) >= 0)  # Left padding.
  assert np.all(t[~m] == 0) and np.all(b["x"][..., 0][~m] == 0)
  np.testing.assert_array_equal(m.sum(1), waves.num_points)
  assert np.all((100 <= waves.num_points) & (waves.num_points <= 999))
  for i, (row_t, row_m) in enumerate(zip(t[:64], m[:64], strict=True)):
    real = row_t[row_m]
    assert np.all(np.diff(real) >= 0)  # Time runs forward.
    lo, hi = waves.start[i], waves.start[i] + waves.duration[i]
    assert lo - 1e-4 <= real[0] and real[-1] <= hi + 1e-4


def test_drawn_parameters_are_in_the_official_ranges(big):
  waves, _ = big
  d, start = waves.duration, waves.start
  assert np.all((1 <= d) & (d <= 100))
  assert np.all((0 <= start) & (start + d <= 100 + 1e-4))
  assert np.all((0 <= waves.shift) & (waves.shift <= d[:, None]))
  p = waves.period
  assert np.all((1 <= p) & (p <= 100))
  assert np.all((5 <= p[:256, 0]) & (p[:256, 0] <= 6))
  assert np.all((13 <= p[:256, 1]) & (p[:256, 1] <= 15))
  # The rest is log-uniform: the median of exp(U(0, ln 100)) is 10.
  assert 8 < np.median(p[256:]) < 12.5


def test_labels_need_both_periods_in_their_bands(big):
  waves, b = big
  p1, p2 = waves.period[:, 0], waves.period[:, 1]
  expected = (5 <= p1) & (p1 <= 6) & (13 <= p2) & (p2 <= 15)
  np.testing.assert_array_equal(b["label"], expected.astype(np.int32))
  assert np.all(b["label"][:256] == 1)
  assert b["label"].mean() >= 0.5
  # Either band alone is not enough: P(both) ~ 0.12% for the second half.
  assert b["label"][256:].mean() < 0.02
  one_band = ((5 <= p1) & (p1 <= 6)) | ((13 <= p2) & (p2 <= 15))
  assert np.any(one_band[256:] & (b["label"][256:] == 0))


@pytest.mark.parametrize("two_pi", [False, True])
def test_x_is_the_sum_of_the_two_drawn_sines(two_pi):
  waves, b = _draw(8, two_pi)
  scale = 2 * np.pi if two_pi else 1.0
  for i in range(8):
    real = b["mask"][i]
    t = b["t"][i, real].astype(np.float64)
    (p1, p2), (s1, s2) = waves.period[i], waves.shift[i]
    expected = np.sin(scale * t / p1 - s1) + np.sin(scale * t / p2 - s2)
    # float32 phases reach 2 pi * 100 rad, so x is good to ~1e-5.
    np.testing.assert_allclose(b["x"][i, real, 0], expected, atol=1e-4)


def test_the_2pi_switch_changes_only_x():
  _, official = _draw(8)
  _, with_2pi = _draw(8, two_pi=True)
  for name in ("t", "mask", "label"):
    np.testing.assert_array_equal(official[name], with_2pi[name])
  assert np.abs(official["x"] - with_2pi["x"]).max() > 0.5


def test_data_is_a_function_of_key_and_step():
  task = combo.make_task(combo_config.get_config("smoke"))
  key = jax.random.key(0)
  a = task.train_batch(key, 3)
  b = task.train_batch(key, 3)
  c = task.train_batch(key, 4)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a["x"], c["x"])
  assert not np.array_equal(a["x"], task.train_batch(jax.random.key(1), 3)["x"])
  first, second = task.eval_batches(key, 1)
  assert not np.array_equal(first["x"], second["x"])


@pytest.mark.parametrize("name", ["plstm", "lstm", "bn_lstm"])
def test_task_1_models_classify_the_batches(name):
  config = combo_config.get_config("smoke")
  config.model.name = name
  task = combo.make_task(config)
  key = jax.random.key(0)
  params = task.init(key, key)
  batch = task.train_batch(key, 0)
  loss, metrics = task.loss(params, batch, jax.random.key(1), training=False)
  assert np.isfinite(loss) and 0 <= metrics["accuracy"] <= 1


def test_unknown_variant_is_reported():
  with pytest.raises(ValueError, match="unknown variant 'default'"):
    combo_config.get_config("default")
