r"""Event streams like N-MNIST's: MNIST digits seen by a simulated event camera.

N-MNIST (Orchard et al. 2015) was recorded by an ATIS sensor on a pan-tilt
unit looking at MNIST digits on a monitor while it made three saccades along
a triangle, about 100 ms each; the 34x34 recordings keep only the sensor's
change events. `convert` simulates that recording offline:

  1. The digit, intensity I = pixel / 255 (ink bright, as white digits on a
     black screen), lies on a dark 34x34 sensor plane
     with its top-left corner at o(t): o moves at constant speed along the
     triangle `vertices[0] -> [1] -> [2] -> [0]`, one saccade of `saccade_ms`
     per side (300 ms in all). Sub-pixel positions are rendered bilinearly.
  2. Each pixel sees the log intensity L = log(I + dark); `dark` is the floor
     that a black screen and the photodiode's dark current leave.
  3. Each pixel holds a reference L_ref, L at t = 0 (a blank start sends
     nothing). It emits ON (p = 1) and sets L_ref += c_on whenever
     L - L_ref >= c_on, and OFF (p = 0) with L_ref -= c_off whenever
     L_ref - L >= c_off: the DVS pixel of Lichtsteiner, Posch & Delbruck 2008.
  4. L is sampled every `dt_ms` (2 ms: at most 0.13 px of motion) and is
     linear in between: an event's time is the interpolated crossing,
     rounded to the sensor's 1 us resolution.

c_on and c_off of each pixel are `contrast * (1 + mismatch * N(0, 1))` (at
least contrast / 10), drawn once from `convert`'s `seed`: the sensor's fixed
pattern mismatch, the same for every digit it records and the only
randomness. It names a sensor (0 by default, whatever a run's seed), so a
data set converted with it is the same in every run, as N-MNIST's.

Format (as tonic's): one NumPy structured array of `EVENT_DTYPE` per
recording, sorted by time (ties by y, then x): x, y in 0..33 (column, row),
t in microseconds from the start of the recording, p in {0 (OFF), 1 (ON)}.

Notes:
  Unlike the ATIS, there is no refractory period, no pixel bandwidth, no
  background noise and no jitter; the pan-tilt motion has constant speed
  along each side rather than its accelerations. The vertices here are ours
  (N-MNIST's path is a triangle of a few pixels per side, centred so the
  digit stays within 34x34).
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

SIZE = 34  # sensor width and height, as N-MNIST
DIGIT = 28  # MNIST width and height
CHUNK = 64  # digits converted at once (~160 MB of work arrays by default)
EVENT_DTYPE = np.dtype(
  [("x", np.uint8), ("y", np.uint8), ("t", np.int64), ("p", np.uint8)]
)


@dataclasses.dataclass(frozen=True)
class Sensor:
  """The simulated sensor and its saccades (see the module docstring).

  With the defaults a full dark-to-ink step is log(1.1 / 0.1) / 0.4 = 6
  events, and an MNIST digit gives a few thousand events, as an N-MNIST
  recording: 4,884 on average over the first 1,000 training digits (2,458
  to 7,603), 51% of them ON.
  """

  contrast: float = 0.4
  mismatch: float = 0.03
  dark: float = 0.1
  saccade_ms: float = 100.0
  dt_ms: float = 2.0
  # Digit offsets (x, y) in pixels; 34 - 28 = 6 leaves 0..6 on each axis.
  vertices: tuple[tuple[float, float], ...] = (
    (3.0, 0.0),
    (6.0, 6.0),
    (0.0, 6.0),
  )

  def __post_init__(self):
    for name in ("contrast", "dark", "saccade_ms", "dt_ms"):
      if getattr(self, name) <= 0:
        raise ValueError(
          f"Sensor: {name} must be positive, got {getattr(self, name)}."
        )
    if self.mismatch < 0:
      raise ValueError(f"Sensor: mismatch must be >= 0, got {self.mismatch}.")
    v = np.asarray(self.vertices)
    if v.shape != (3, 2) or v.min() < 0 or v.max() > SIZE - DIGIT:
      raise ValueError(
        f"Sensor: vertices must be three (x, y) in [0, {SIZE - DIGIT}], got "
        f"{self.vertices}."
      )

  @property
  def duration_ms(self) -> float:
    return 3 * self.saccade_ms


def offsets(sensor: Sensor, t_ms: np.ndarray) -> np.ndarray:
  """The digit's top-left corner (x, y) [..., 2] at times t_ms [...]."""
  v = np.asarray(sensor.vertices, np.float64)
  side = np.clip(np.floor(t_ms / sensor.saccade_ms), 0, 2).astype(int)
  frac = np.clip(t_ms / sensor.saccade_ms - side, 0.0, 1.0)[..., None]
  return v[side] + frac * (v[(side + 1) % 3] - v[side])


def render(intensity: jax.Array, offset: jax.Array) -> jax.Array:
  """Digits [N, 28, 28] at sub-pixel `offset` (x, y) on the [N, 34, 34] plane.

  Sensor pixel u sees the digit at u - o, bilinearly: with o = i + f (integer
  and fraction), (1 - f) C[u] + f C[u - 1] on each axis, where the canvas C
  holds the digit shifted by i (a window of the zero-padded digit).
  """
  margin = SIZE - DIGIT + 1  # room for any shift 0..6 and the u - 1 pixel
  padded = jnp.pad(intensity, ((0, 0), (margin, margin), (margin, margin)))
  whole = jnp.floor(offset)
  fx, fy = offset - whole
  ix, iy = whole.astype(jnp.int32)
  c = jax.lax.dynamic_slice(
    padded,
    (jnp.int32(0), margin - 1 - iy, margin - 1 - ix),
    (intensity.shape[0], SIZE + 1, SIZE + 1),
  )
  return (1 - fy) * ((1 - fx) * c[:, 1:, 1:] + fx * c[:, 1:, :-1]) + fy * (
    (1 - fx) * c[:, :-1, 1:] + fx * c[:, :-1, :-1]
  )


def thresholds(sensor: Sensor, seed: int) -> np.ndarray:
  """The per-pixel (c_on, c_off) [2, 34, 34] of the sensor with this seed."""
  noise = np.random.default_rng(seed).standard_normal((2, SIZE, SIZE))
  c = sensor.contrast * (1 + sensor.mismatch * noise)
  return np.maximum(c, 0.1 * sensor.contrast).astype(np.float32)


@jax.jit
def _fire(intensity, path, c_on, c_off, dark):
  """The sensor's pixels over the samples of `path` [S + 1, 2].

  Returns, per sample s = 1..S, digit and pixel ([S, N, 34, 34] each): the
  signed number of events n (ON > 0) in (s - 1, s], and (a, b) such that
  event k = 1..|n| crosses at a + k b of the way through the interval.
  """
  level = jnp.log(jax.vmap(lambda o: render(intensity, o))(path) + dark)

  def step(ref, after):
    diff = after - ref
    count = jnp.maximum(jnp.floor(diff / c_on), 0) - jnp.maximum(
      jnp.floor(-diff / c_off), 0
    )
    return ref + jnp.where(count > 0, c_on, c_off) * count, (count, ref)

  _, (count, ref) = jax.lax.scan(step, level[0], level[1:])
  fires = count != 0
  slope = jnp.where(fires, level[1:] - level[:-1], 1)
  a = jnp.where(fires, (ref - level[:-1]) / slope, 0)
  b = jnp.where(fires, jnp.where(count > 0, c_on, -c_off) / slope, 0)
  return count.astype(jnp.int16), a, b


def convert(
  images: np.ndarray, sensor: Sensor = Sensor(), seed: int = 0
) -> list[np.ndarray]:
  """Event streams of `EVENT_DTYPE` for uint8 digits [N, 28, 28], one each.

  The pixels run as one `jax.lax.scan` over the `duration_ms / dt_ms`
  samples (each pixel's reference depends on its past), vectorised over
  pixels and `CHUNK` digits at a time, in float32; the events are then
  gathered in NumPy. `seed` draws the sensor's thresholds (`thresholds`).
  """
  images = np.asarray(images)
  if images.ndim != 3 or images.shape[1:] != (DIGIT, DIGIT):
    raise ValueError(
      f"convert: images must be [N, {DIGIT}, {DIGIT}], got {images.shape}."
    )
  c_on, c_off = thresholds(sensor, seed)
  num_steps = round(sensor.duration_ms / sensor.dt_ms)
  path = offsets(sensor, np.arange(num_steps + 1) * sensor.dt_ms)
  size = min(CHUNK, len(images))
  streams = []
  for i in range(0, len(images), size):
    chunk = np.zeros((size, DIGIT, DIGIT), np.float32)  # blanks pad
    chunk[: len(images) - i] = images[i : i + size] / np.float32(255)
    fired = _fire(chunk, path.astype(np.float32), c_on, c_off, sensor.dark)
    streams += _gather(*jax.device_get(fired), sensor.dt_ms)
  return streams[: len(images)]


def _gather(count, a, b, dt_ms: float) -> list[np.ndarray]:
  """The sorted events of each digit from `_fire`'s [S, N, 34, 34] outputs."""
  (flat,) = np.nonzero(count.ravel())
  n = count.ravel()[flat].astype(np.int64)
  step, sample, y, x = np.unravel_index(flat, count.shape)
  # Expand each firing (step, digit, pixel) into its events k = 1..|n|.
  src = np.repeat(np.arange(n.size), np.abs(n))
  k = np.arange(src.size) - np.repeat(
    np.cumsum(np.abs(n)) - np.abs(n), np.abs(n)
  )
  frac = a.ravel()[flat][src] + (k + 1) * b.ravel()[flat][src]
  t_us = np.rint((step[src] + frac) * dt_ms * 1000).astype(np.int64)
  sample, y, x = sample[src], y[src], x[src]
  # One int64 key orders by digit, time, y, then x.
  order = np.argsort((sample * 2**32 + t_us) * SIZE**2 + y * SIZE + x)
  events = np.empty(order.size, EVENT_DTYPE)
  events["x"], events["y"], events["t"] = x[order], y[order], t_us[order]
  events["p"] = n[src][order] > 0
  bounds = np.searchsorted(sample[order], np.arange(count.shape[1] + 1))
  return [events[i:j] for i, j in zip(bounds[:-1], bounds[1:], strict=True)]


def load_nmnist(data_dir: str, train: bool) -> Sequence:
  """Real N-MNIST from `data_dir` via tonic: a sequence of (events, label).

  The events are tonic's structured arrays with the fields x, y, t (us), p
  of `EVENT_DTYPE` (`as_events` casts them).
  """
  try:
    import tonic  # An optional dependency.
  except ImportError:
    raise ValueError(
      "config.data.source='nmnist' reads N-MNIST with tonic, which is not "
      "installed; pip install tonic, or use config.data.source='mnist'."
    ) from None
  try:
    return tonic.datasets.NMNIST(save_to=data_dir, train=train)
  except Exception as e:  # Network, disk and format errors all end here.
    reason = " ".join(str(e).split())[:200]
    raise ValueError(
      f"tonic could not load N-MNIST from {data_dir!r} ({type(e).__name__}: "
      f"{reason}); set config.data.dir to tonic's N-MNIST directory."
    ) from e


def as_events(recording: np.ndarray) -> np.ndarray:
  """A structured array with fields x, y, t, p as `EVENT_DTYPE`, by time."""
  events = np.empty(len(recording), EVENT_DTYPE)
  for name in EVENT_DTYPE.names:
    events[name] = recording[name]
  return events[np.argsort(events["t"], kind="stable")]
