"""The MNIST-to-events converter (experiments/common/events.py)."""

import importlib.util

import numpy as np
import pytest

from experiments.common import events

# Saccades along x only, 3 px in each of the first two 100 ms: the digit's
# offset is x = 3 t / 100 (t in ms) for t <= 100.
LINE = ((0.0, 0.0), (3.0, 0.0), (6.0, 0.0))


def _ring() -> np.ndarray:
  """A digit-like ring [1, 28, 28] (a zero), ink 255 with grey edges."""
  y, x = np.mgrid[:28, :28]
  radius = np.hypot(y - 13.5, x - 13.5)
  ink = np.clip(3 - 2 * np.abs(radius - 8), 0, 1)
  return (255 * ink).astype(np.uint8)[None]


def test_format_of_a_digit_stream():
  (stream,) = events.convert(_ring())
  assert stream.dtype == events.EVENT_DTYPE
  assert 1000 < len(stream) < 20_000  # a few thousand, as N-MNIST digits
  assert np.all(np.diff(stream["t"]) >= 0)
  assert 0 < stream["t"].min() and stream["t"].max() <= 300_000
  assert stream["x"].max() <= 33 and stream["y"].max() <= 33
  assert set(np.unique(stream["p"])) == {0, 1}
  # Every saccade moves edges, so each 100 ms holds a share of the events.
  per_saccade = np.histogram(stream["t"], bins=[0, 1e5, 2e5, 3e5 + 1])[0]
  assert np.all(per_saccade > 0.2 * len(stream))
  # Each pixel returns to its start, so its ON and OFF steps nearly cancel.
  assert abs(np.mean(stream["p"]) - 0.5) < 0.05


def test_blank_digit_gives_no_events():
  streams = events.convert(np.zeros((2, 28, 28), np.uint8))
  assert [len(s) for s in streams] == [0, 0]
  assert streams[0].dtype == events.EVENT_DTYPE


def test_a_bright_pixel_moving_right_emits_the_hand_derived_events():
  """One pixel of ink at (row 10, col 12), moving right at 3 px / 100 ms.

  With the bilinear rendering, sensor column 12 holds 1 - x for x in [0, 1]
  and column 13 holds x, so with log(I + d) and a threshold c:
    column 12: OFF at L = log(1 + d) - j c: t = 100/3 (1 + d)(1 - e^{-jc}),
    column 13: ON  at L = log(d) + j c:      t = 100/3 d (e^{jc} - 1),
  for j = 1..K, K = floor(log((1 + d) / d) / c) = 4 here; column 13 then
  falls as the pixel moves on, so its OFF events follow its ON events.
  """
  d, c = 0.1, 0.5
  sensor = events.Sensor(
    contrast=c, mismatch=0.0, dark=d, dt_ms=0.5, vertices=LINE
  )
  image = np.zeros((1, 28, 28), np.uint8)
  image[0, 10, 12] = 255
  (stream,) = events.convert(image, sensor)
  j = np.arange(1, 5)
  first = stream[stream["t"] < 100_000 / 3]  # x < 1
  col12, col13 = first[first["x"] == 12], first[first["x"] == 13]
  np.testing.assert_array_equal(col12["p"], 0)
  np.testing.assert_allclose(
    col12["t"], 1e5 / 3 * (1 + d) * (1 - np.exp(-j * c)), atol=50
  )
  np.testing.assert_array_equal(col13["p"], 1)
  np.testing.assert_allclose(
    col13["t"], 1e5 / 3 * d * (np.exp(j * c) - 1), atol=50
  )
  assert len(first) == 8
  later13 = stream[(stream["x"] == 13) & (stream["t"] >= 100_000 / 3)]
  assert len(later13) >= 3 and np.all(later13["p"][:3] == 0)
  # Up to 100 ms the light stays on row 10, in columns 12..15.
  saccade1 = stream[stream["t"] <= 100_000]
  assert set(saccade1["y"]) == {10}
  assert set(saccade1["x"]) == {12, 13, 14, 15}


def test_conversion_is_deterministic_given_the_seed():
  images = np.concatenate([_ring(), np.rot90(_ring(), axes=(1, 2))])
  a = events.convert(images, seed=3)
  b = events.convert(images, seed=3)
  c = events.convert(images, seed=4)
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x, y)
  assert any(
    len(x) != len(z) or np.any(x != z) for x, z in zip(a, c, strict=True)
  )
  # Converting digits together or one by one gives the same streams.
  np.testing.assert_array_equal(events.convert(images[1:], seed=3)[0], a[1])


def test_thresholds_scatter_around_the_contrast():
  c = events.thresholds(events.Sensor(contrast=0.4, mismatch=0.03), seed=0)
  assert c.shape == (2, 34, 34) and c.dtype == np.float32
  assert abs(c.mean() - 0.4) < 0.005 and 0.008 < c.std() < 0.016


def test_saccades_follow_the_triangle():
  sensor = events.Sensor()
  v = np.array(sensor.vertices)
  np.testing.assert_allclose(
    events.offsets(sensor, np.array([0.0, 100.0, 200.0, 300.0])),
    [v[0], v[1], v[2], v[0]],
  )
  np.testing.assert_allclose(
    events.offsets(sensor, np.array([50.0])), [(v[0] + v[1]) / 2]
  )


def test_render_places_the_digit_and_keeps_its_light():
  image = _ring()[0].astype(np.float32) / 255
  plane = np.asarray(events.render(image[None], np.float32([2.0, 5.0])))[0]
  np.testing.assert_array_equal(plane[5:33, 2:30], image)
  assert plane.sum() == pytest.approx(image.sum(), rel=1e-5)
  shifted = np.asarray(events.render(image[None], np.float32([2.3, 4.6])))[0]
  assert shifted.sum() == pytest.approx(image.sum(), rel=1e-5)


def test_bad_inputs_are_reported():
  with pytest.raises(ValueError, match=r"\[N, 28, 28\]"):
    events.convert(np.zeros((28, 28), np.uint8))
  with pytest.raises(ValueError, match="vertices"):
    events.Sensor(vertices=((0.0, 0.0), (7.0, 0.0), (0.0, 6.0)))
  with pytest.raises(ValueError, match="contrast"):
    events.Sensor(contrast=0.0)


def test_tonic_recordings_are_cast_and_sorted():
  recording = np.array(
    [(3, 4, 20, 1), (33, 0, 10, 0)],
    dtype=[("x", int), ("y", int), ("t", int), ("p", int)],
  )
  e = events.as_events(recording)
  assert e.dtype == events.EVENT_DTYPE
  assert e.tolist() == [(33, 0, 10, 0), (3, 4, 20, 1)]


@pytest.mark.skipif(
  importlib.util.find_spec("tonic") is not None, reason="tonic is installed"
)
def test_missing_tonic_is_one_clear_error():
  with pytest.raises(ValueError, match="pip install tonic"):
    events.load_nmnist("/nonexistent", train=True)
