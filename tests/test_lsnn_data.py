"""Tests of experiments/common/lsnn_data.py against NumPy ports of
LSNN-official."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.common import lsnn_data

S, R = lsnn_data.STORE, lsnn_data.RECALL


# Threshold crossings ---------------------------------------------------------


def _original_onset_offset(y, threshold):
  """The original's `find_onset_offset` (float32 y, float64 threshold)."""
  if threshold == 1:
    return (y == threshold)[None].astype(y.dtype)
  lower, higher = y < threshold, y >= threshold
  onset, offset = np.zeros_like(y), np.zeros_like(y)
  onset[np.where(lower[:-1] & higher[1:])[0]] = 1
  offset[np.where(higher[:-1] & lower[1:])[0]] = 1
  return np.stack([onset, offset])


def _original_encoding(pixels, n_in, cue_steps):
  """The original's `get_data_dict` loop with crs_thr=True."""
  thrs = np.linspace(0, 1, n_in // 2)
  stack = np.array(
    [
      np.concatenate([_original_onset_offset(img, t) for t in thrs]).T
      for img in pixels
    ]
  )
  stack = np.pad(stack, ((0, 0), (0, cue_steps), (0, 1)))
  stack[:, -cue_steps:, -1] = 1
  return stack


def _mnist_like(rng, shape):
  """float32 uint8 / 255 with many 0s and 1s, as MNIST digits."""
  k = rng.integers(0, 256, shape)
  k = np.where(rng.random(shape) < 0.5, 0, k)
  k = np.where(rng.random(shape) < 0.2, 255, k)
  return k.astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("n_in", [80, 8])
def test_threshold_code_equals_original_loop(n_in):
  pixels = _mnist_like(np.random.default_rng(n_in), (3, 784))
  pixels[0, :256] = np.arange(256, dtype=np.float32) / np.float32(255)
  got = lsnn_data.encode_threshold_crossings(pixels, n_in, 56)
  assert got.shape == (3, 784 + 56, n_in) and got.dtype == jnp.float32
  want = _original_encoding(pixels, n_in, 56)
  assert want.shape == got.shape
  np.testing.assert_array_equal(np.asarray(got), want)
  assert np.asarray(got)[:, :784, :-2].sum() > 100  # the code is not empty


def test_threshold_code_by_hand():
  # Thresholds 0, 1/3, 2/3, 1; channels: on0 off0 on1/3 off1/3 on2/3 off2/3
  # touch cue.
  y = np.array([[0.0, 0.5, 1.0, 0.5, 0.0]], np.float32)
  want = np.array(
    [
      [0, 0, 1, 0, 0, 0, 0, 0],  # 0 < 1/3 <= 0.5
      [0, 0, 0, 0, 1, 0, 0, 0],  # 0.5 < 2/3 <= 1
      [0, 0, 0, 0, 0, 1, 1, 0],  # 1 >= 2/3 > 0.5; y == 1
      [0, 0, 0, 1, 0, 0, 0, 0],  # 0.5 >= 1/3 > 0
      [0, 0, 0, 0, 0, 0, 0, 0],  # last pixel: no crossing
      [0, 0, 0, 0, 0, 0, 0, 1],
      [0, 0, 0, 0, 0, 0, 0, 1],
    ],
    np.float32,
  )
  got = lsnn_data.encode_threshold_crossings(y, n_in=8, cue_steps=2)
  np.testing.assert_array_equal(np.asarray(got)[0], want)


def test_ramp_has_one_onset_and_one_offset_per_threshold():
  # y_0 = 0, y_t = (t - 1/2) / 39 for t = 1..39, y_40 = 1, then the mirror:
  # threshold j / 39 (j = 1..38) is crossed upwards between t = j and j + 1
  # and downwards between t = 79 - j and 80 - j; only y_40 touches 1.
  up = np.concatenate([[0.0], (np.arange(1, 40) - 0.5) / 39])
  y = np.concatenate([up, [1.0], up[::-1]]).astype(np.float32)
  code = np.asarray(lsnn_data.encode_threshold_crossings(y[None], 80, 56))[0]
  assert code.shape == (81 + 56, 80)
  onset, offset, touch = code[:81, 0:78:2], code[:81, 1:78:2], code[:81, 78]
  assert onset[:, 0].sum() == 0 and offset[:, 0].sum() == 0  # thr = 0
  for j in range(1, 39):
    np.testing.assert_array_equal(np.flatnonzero(onset[:, j]), [j])
    np.testing.assert_array_equal(np.flatnonzero(offset[:, j]), [79 - j])
  np.testing.assert_array_equal(np.flatnonzero(touch), [40])


def test_cue_channel_and_silent_cue_period():
  pixels = _mnist_like(np.random.default_rng(1), (2, 784))
  code = np.asarray(lsnn_data.encode_threshold_crossings(pixels))
  assert code.shape == (2, 840, 80)
  np.testing.assert_array_equal(code[:, :784, -1], 0)
  np.testing.assert_array_equal(code[:, 784:, -1], 1)
  np.testing.assert_array_equal(code[:, 783:, :-1], 0)


def test_threshold_code_runs_inside_jit_of_the_caller():
  pixels = _mnist_like(np.random.default_rng(2), (2, 784))
  loss = jax.jit(
    lambda p: jnp.sum(lsnn_data.encode_threshold_crossings(p, 80, 56), (1, 2))
  )
  want = _original_encoding(pixels, 80, 56).sum(axis=(1, 2))
  np.testing.assert_array_equal(np.asarray(loss(jnp.asarray(pixels))), want)


@pytest.mark.parametrize("n_in", [81, 2, 3])
def test_threshold_code_rejects_n_in_that_does_not_add_up(n_in):
  with pytest.raises(ValueError, match="n_in must be even and at least 4"):
    lsnn_data.encode_threshold_crossings(np.zeros((1, 10), np.float32), n_in)


# Store-recall ----------------------------------------------------------------


def _original_validity(seq):
  """The original's `validity_test`, rule by rule."""
  if not ((seq == R).any() and (seq == S).any() and (seq < S).any()):
    return False
  if np.argmax(seq == R) < np.argmax(seq == S):
    return False
  if -np.argmax(seq[::-1] == R) < -np.argmax(seq[::-1] == S):
    return False
  stores, recalls = np.where(seq == S)[0], np.where(seq == R)[0]
  for t in stores:
    if t == seq.size - 1 or seq[t + 1] in (R, S):
      return False
  for a, b in itertools.pairwise(recalls):
    if not ((a < stores) & (stores < b)).any():
      return False
  for a, b in itertools.pairwise(stores):
    if not ((a < recalls) & (recalls < b)).any():
      return False
  return True


def _unfiltered_sequences(rng, n, seq_len=12):
  """Random sequences with many markers, valid or not."""
  symbols = rng.integers(0, 2, (n, seq_len))
  markers = rng.integers(S, R + 1, (n, seq_len))
  p = rng.uniform(0.05, 0.6, (n, 1))
  return np.where(rng.random((n, seq_len)) < p, markers, symbols)


def test_validity_equals_original_rules():
  hand = {
    (S, 0, R): True,
    (0, S, R, 1): False,  # a recall right after the store
    (S, 1, S, 0, R, R): False,  # two stores, then two recalls
    (0, S, 1, R, S): False,  # a store last
    (R, S, 0, R): False,  # a recall first
    (S, 0, S, 1, R): False,  # two stores in a row
    (0, 1, 0): False,  # no marker
  }
  for seq, valid in hand.items():
    assert lsnn_data.is_valid_store_recall(np.array(seq)) is valid, seq
  seqs = _unfiltered_sequences(np.random.default_rng(0), 20000)
  got = np.array([lsnn_data.is_valid_store_recall(s) for s in seqs])
  want = np.array([_original_validity(s) for s in seqs])
  np.testing.assert_array_equal(got, want)
  assert 500 < got.sum() < got.size - 500  # both outcomes well covered


def test_every_sampled_sequence_is_valid_and_consistent():
  batch = lsnn_data.sample_store_recall(np.random.default_rng(3), 500)
  symbols, channels = batch["symbols"], batch["channels"]
  assert channels.shape == (500, 12, 4) and channels.dtype == np.float32
  assert batch["target"].dtype == np.int32
  assert batch["is_recall"].dtype == bool
  assert all(_original_validity(s) for s in symbols)
  np.testing.assert_array_equal(batch["is_recall"], symbols == R)
  np.testing.assert_array_equal(channels[..., 2:], symbols[..., None] == [S, R])
  # Value channels are one-hot at values and stores, silent at recalls.
  np.testing.assert_array_equal(channels[..., :2].sum(-1), symbols != R)
  for b, t in zip(*np.nonzero(symbols == R), strict=True):
    last_store = np.flatnonzero(symbols[b, :t] == S)[-1]
    assert batch["target"][b, t] == symbols[b, last_store + 1]
  np.testing.assert_array_equal(batch["target"][symbols != R], 0)


def test_targets_and_channels_by_hand():
  symbols = np.array([[1, S, 0, 1, R, 0, S, 1, 1, R, 0, 0]])
  seen = set()
  for seed in range(40):
    out = lsnn_data.store_recall_from_symbols(
      np.random.default_rng(seed), symbols
    )
    np.testing.assert_array_equal(
      out["target"], [[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]]
    )
    ch = out["channels"][0]
    np.testing.assert_array_equal(ch[1], [1, 0, 1, 0])  # store shows the 0
    np.testing.assert_array_equal(ch[6], [0, 1, 1, 0])  # store shows the 1
    np.testing.assert_array_equal(ch[[0, 3, 8]], [[0, 1, 0, 0]] * 3)
    np.testing.assert_array_equal(ch[[5, 10, 11]], [[1, 0, 0, 0]] * 3)
    np.testing.assert_array_equal(ch[[4, 9]], [[0, 0, 0, 1]] * 2)
    seen.add((tuple(ch[2]), tuple(ch[7])))
  # Each slot after a store is shown as is or inverted, independently.
  assert seen == {
    ((1, 0, 0, 0), (0, 1, 0, 0)),
    ((0, 1, 0, 0), (0, 1, 0, 0)),
    ((1, 0, 0, 0), (1, 0, 0, 0)),
    ((0, 1, 0, 0), (1, 0, 0, 0)),
  }


def test_distractor_rate_is_one_half():
  batch = lsnn_data.sample_store_recall(np.random.default_rng(4), 2000)
  b, t = np.nonzero(batch["symbols"] == S)
  shown = batch["channels"][b, t + 1, 1]
  inverted = shown != batch["symbols"][b, t + 1]
  assert abs(inverted.mean() - 0.5) < 4 * 0.5 / np.sqrt(inverted.size)


def _exact_marker_frequencies(seq_len, p):
  """E[stores per slot], E[recalls per slot] of the original's generator.

  Validity depends only on where the markers fall (a valid sequence always
  has a value), so enumerate the 2^L marker patterns from each starting
  marker. A rejected draw passes its final marker on to the next draw
  (a Markov chain on {recall, store}), which weights the starting markers.
  """
  start_states = (R, S)
  accept = np.zeros(2)
  stores = np.zeros(2)
  recalls = np.zeros(2)
  carry = np.zeros((2, 2))  # rejected draws: start -> final marker
  for i, start in enumerate(start_states):
    for pattern in itertools.product((0, 1), repeat=seq_len):
      k = sum(pattern)
      prob = p**k * (1 - p) ** (seq_len - k)
      seq, last = np.zeros(seq_len, int), start
      for t, hit in enumerate(pattern):
        if hit:
          last = S if last == R else R
          seq[t] = last
      if _original_validity(seq):
        accept[i] += prob
        stores[i] += prob * np.mean(seq == S)
        recalls[i] += prob * np.mean(seq == R)
      else:
        carry[i, start_states.index(last)] += prob
  weight = np.linalg.solve((np.eye(2) - carry).T, [1.0, 0.0])
  return weight @ stores, weight @ recalls


def test_store_and_recall_frequencies_match_the_exact_ones():
  seq_len, seq_delay = 10, 6
  want_s, want_r = _exact_marker_frequencies(seq_len, 1 / (1 + seq_delay))
  batch = lsnn_data.sample_store_recall(
    np.random.default_rng(5), 4000, seq_len=seq_len, seq_delay=seq_delay
  )
  # Per-sequence frequencies have std < 0.1; 4000 sequences: 5 sigma < 0.008.
  assert abs(np.mean(batch["symbols"] == S) - want_s) < 0.008
  assert abs(np.mean(batch["symbols"] == R) - want_r) < 0.008
  # Far from 1/7 each: conditioning on validity lowers the marker count.
  assert 0.07 < want_s < 0.12 and want_s == pytest.approx(want_r)


def test_store_recall_is_deterministic_per_seed():
  def draw(seed):
    return lsnn_data.sample_store_recall(np.random.default_rng(seed), 64)

  a, b, c = draw(7), draw(7), draw(8)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["symbols"], c["symbols"])


def test_invalid_symbols_are_rejected():
  with pytest.raises(ValueError, match="sequence 1"):
    lsnn_data.store_recall_from_symbols(
      np.random.default_rng(0), [[0, S, 1, R], [0, S, R, 1]]
    )


# Poisson spikes --------------------------------------------------------------


def test_poisson_rates_and_silent_groups():
  batch = lsnn_data.sample_store_recall(np.random.default_rng(6), 32)
  spikes = lsnn_data.poisson_spikes(jax.random.key(0), batch["channels"])
  assert spikes.shape == (32, 12 * 200, 100) and spikes.dtype == jnp.float32
  spikes = np.asarray(spikes)
  active = np.repeat(batch["channels"], 25, axis=-1).repeat(200, axis=1) > 0
  np.testing.assert_array_equal(spikes[~active], 0)
  rate = spikes[active].mean()
  n = active.sum()
  assert abs(rate - 0.05) < 5 * np.sqrt(0.05 * 0.95 / n)
  assert set(np.unique(spikes)) == {0.0, 1.0}


@pytest.mark.parametrize(
  "n_in, sizes", [(100, [25, 25, 25, 25]), (10, [3, 3, 2, 2])]
)
def test_poisson_groups_follow_array_split(n_in, sizes):
  channels = np.eye(4, dtype=np.float32)[None]  # slot g: only group g on
  spikes = lsnn_data.poisson_spikes(
    jax.random.key(1), channels, n_in=n_in, f0=1.0, slot_ms=3
  )
  on = np.asarray(spikes)[0, ::3]  # f0 = 1: every neuron of the group fires
  edges = np.cumsum([0, *sizes])
  want = np.zeros((4, n_in))
  for g in range(4):
    want[g, edges[g] : edges[g + 1]] = 1
  np.testing.assert_array_equal(on, want)
  np.testing.assert_array_equal(
    np.asarray(spikes)[0].reshape(4, 3, n_in).std(1), 0
  )
