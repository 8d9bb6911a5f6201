"""The tutorial's nonsense language model (experiments/language_model.py)."""

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import language_model as lm_config
from experiments import language_model as lm

KEY = jax.random.key(0)


def _alternatives(words):
  return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


NOUN = f"(?:{_alternatives(lm.NOUNS)})"
CLAUSE = re.compile(
  f"(?P<stop>{_alternatives(lm.STOP)}) {NOUN}"
  f"(?P<adverbs>(?: (?:{_alternatives(lm.ADVERBS)})){{0,2}})"
  f" (?:{_alternatives(lm.VERBS)})"
  f"(?P<object> {NOUN}(?:-{NOUN})?)?"
  r"(?P<end> [.,;?!]|\.)"
)


def _clauses(sentence):
  """Parses a sentence into clause matches; fails if it is ungrammatical."""
  matches, pos = [], 0
  while pos < len(sentence):
    m = CLAUSE.match(sentence, pos)
    assert m, f"ungrammatical at {pos}: {sentence!r}"
    matches.append(m)
    pos = m.end() + 1  # the space between clauses
  assert matches[-1].group("end").endswith(".")
  assert all(not m.group("end").endswith(".") for m in matches[:-1])
  return matches


def _sentences(n, seed=0):
  rng = np.random.default_rng(seed)
  return [lm.generate_nonsense(rng) for _ in range(n)]


def test_sentences_follow_the_grammar_and_are_seeded():
  sentences = _sentences(500)
  for s in sentences:
    _clauses(s)
    assert all(t in lm.INDEX for t in lm.tokenize(s))
  assert sentences == _sentences(500)
  assert sentences != _sentences(500, seed=1)


def test_grammar_probabilities_by_counting():
  clauses = [m for s in _sentences(4000, seed=3) for m in _clauses(s)]
  n = len(clauses)  # about 9100
  adverbs = [
    len(re.findall("|".join(lm.ADVERBS), m["adverbs"])) for m in clauses
  ]
  objects = [m["object"] for m in clauses]
  with_object = [o for o in objects if o]
  freq = lambda k, total: k / total
  # Each within about 4 standard errors.
  assert abs(freq(sum(a > 0 for a in adverbs), n) - 0.3) < 0.02
  assert (
    abs(freq(sum(a == 2 for a in adverbs), sum(a > 0 for a in adverbs)) - 0.3)
    < 0.04
  )
  assert abs(freq(len(with_object), n) - 0.2) < 0.02
  assert (
    abs(freq(sum("-" in o for o in with_object), len(with_object)) - 0.1) < 0.03
  )
  ends = collections.Counter(m["end"].strip() for m in clauses)
  assert abs(freq(ends["."], n) - 0.49 / 1.12) < 0.025
  stops = collections.Counter(m["stop"] for m in clauses)
  assert abs(freq(stops["the"], n) - 10 / sum(lm.STOP.values())) < 0.02


def _log_prob(sentence) -> tuple[float, float]:
  """log p of a sentence under the grammar, and log p of its first word."""
  stop = np.array(list(lm.STOP.values()))
  punct = np.array(list(lm.PUNCTUATION.values()))
  log_p = 0.0
  for m in _clauses(sentence):
    log_p += np.log(lm.STOP[m.group("stop")] / stop.sum())
    log_p -= np.log(len(lm.NOUNS)) + np.log(len(lm.VERBS))
    n_adverbs = len(re.findall("|".join(lm.ADVERBS), m.group("adverbs")))
    log_p += np.log([0.7, 0.3 * 0.7, 0.3 * 0.3][n_adverbs])
    log_p -= n_adverbs * np.log(len(lm.ADVERBS))
    obj = m.group("object")
    n_nouns = 0 if obj is None else 1 + obj.count("-")
    log_p += np.log([0.8, 0.2 * 0.9, 0.2 * 0.1][n_nouns])
    log_p -= n_nouns * np.log(len(lm.NOUNS))
    log_p += np.log(lm.PUNCTUATION[m.group("end").strip()] / punct.sum())
  first = np.log(lm.STOP[lm.tokenize(sentence)[0]] / stop.sum())
  return log_p, first


def test_entropy_rate_matches_the_sampled_sentences():
  """The closed form against the mean -log p of parsed samples per token."""
  sentences = _sentences(4000, seed=2)
  nll = sum(first - log_p for log_p, first in map(_log_prob, sentences))
  targets = sum(len(lm.tokenize(s)) - 1 for s in sentences)
  # Standard error of the ratio: about 0.5%.
  np.testing.assert_allclose(nll / targets, lm.entropy_rate(), rtol=0.02)
  mean_len = np.mean([len(lm.tokenize(s)) for s in sentences])
  clauses = sum(lm.PUNCTUATION.values()) / lm.PUNCTUATION["."]
  np.testing.assert_allclose(
    mean_len, clauses * lm.tokens_per_clause(), rtol=0.03
  )


def test_vocabulary_is_closed_with_unknown_at_zero():
  assert lm.VOCAB[0] == lm.UNKNOWN and len(lm.VOCAB) == 47
  assert len(set(lm.VOCAB)) == len(lm.VOCAB)
  assert lm.tokenize("in dog-cat in jest ran.") == [
    "in",
    "dog",
    "-",
    "cat",
    "in",
    "jest",
    "ran",
    ".",
  ]


def test_encode_pads_right_with_zero_and_cuts_at_max_len():
  tokens, lengths = lm.encode(
    ["the cat ran .", "a dog-cat jump , he zebra do ."], 8
  )
  i = lm.INDEX
  np.testing.assert_array_equal(lengths, [4, 8])
  np.testing.assert_array_equal(
    tokens,
    [
      [i["the"], i["cat"], i["ran"], i["."], 0, 0, 0, 0],
      [i["a"], i["dog"], i["-"], i["cat"], i["jump"], i[","], i["he"], 0],
    ],
  )
  assert tokens.dtype == lengths.dtype == np.int32
  assert lm.decode(tokens[0, :4]) == "the cat ran ."


def test_unigram_baseline_by_hand():
  config = lm_config.get_config("smoke")
  rng = np.random.default_rng(lm.CORPUS_SEED)
  sentences = [lm.generate_nonsense(rng) for _ in range(config.data.train_size)]
  counts = collections.Counter(
    t for s in sentences for t in lm.tokenize(s)[1 : config.data.max_len]
  )
  n, v = sum(counts.values()), len(lm.VOCAB)
  log_p = lm.unigram_log_probs(*lm.train_set(config.data))
  for word in ("the", ".", "jest", "-"):
    np.testing.assert_allclose(
      log_p[lm.INDEX[word]], np.log((counts[word] + 1) / (n + v)), rtol=1e-6
    )
  task = lm.make_task(config)
  batch = task.train_batch(KEY, 0)
  params = task.init(KEY, KEY)
  _, metrics = task.loss(params, batch, None, training=False)
  expected = -sum(c * log_p[lm.INDEX[w]] for w, c in counts.items()) / n
  np.testing.assert_allclose(metrics["unigram_loss"], expected, rtol=1e-5)


def test_loss_is_the_summed_nll_of_the_real_targets():
  config = lm_config.get_config("smoke")
  task = lm.make_task(config)
  params = task.init(KEY, KEY)
  batch = task.train_batch(KEY, 0)
  total, metrics = task.loss(params, batch, None, training=True)
  cells = lm.make_cells(config.model)
  logits = np.asarray(
    lm.next_token_logits(config.model, cells, params, batch["tokens"])
  )
  t = config.data.max_len - 1
  assert logits.shape == (config.data.batch_size, t, len(lm.VOCAB))
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll, hits, count = 0.0, 0, 0
  for b, (row, n) in enumerate(
    zip(batch["tokens"], batch["lengths"], strict=True)
  ):
    for k in range(n - 1):
      nll -= log_p[b, k, row[k + 1]]
      hits += int(np.argmax(logits[b, k]) == row[k + 1])
      count += 1
  np.testing.assert_allclose(total, nll, rtol=1e-5)
  np.testing.assert_allclose(metrics["loss"], nll / count, rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"], hits / count, atol=1e-6)
  # Whatever sits in the padding changes nothing.
  padded = {
    **batch,
    "tokens": np.where(batch["tokens"] == 0, 5, batch["tokens"]),
  }
  again, _ = task.loss(params, padded, None, training=True)
  np.testing.assert_allclose(again, total, rtol=1e-6)


def test_train_batch_is_the_full_set_or_a_seeded_subset():
  config = lm_config.get_config("smoke")
  train_batch = lm.make_task(config).train_batch
  full = train_batch(KEY, 0)
  np.testing.assert_array_equal(full["tokens"], train_batch(KEY, 7)["tokens"])
  config.data.train_size = 20
  task = lm.make_task(config)
  a, b = task.train_batch(KEY, 3), task.train_batch(KEY, 4)
  assert a["tokens"].shape == (config.data.batch_size, config.data.max_len)
  np.testing.assert_array_equal(a["tokens"], task.train_batch(KEY, 3)["tokens"])
  assert not np.array_equal(a["tokens"], b["tokens"])
  everything = {tuple(r) for r in lm.train_set(config.data)[0]}
  assert {tuple(r) for r in a["tokens"]} <= everything
  evals = task.eval_batches(KEY, 1)
  assert len(evals) == 2 and evals[0]["tokens"].shape == a["tokens"].shape


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_cells_and_greedy_generation(cell, tmp_path, capsys):
  config = lm_config.get_config("smoke")
  config.model.cell = cell
  task, cells = lm.make_task(config), lm.make_cells(config.model)
  params = task.init(KEY, KEY)
  assert params["embed"].shape == (len(lm.VOCAB), config.model.embed)
  greedy, sampled = lm.generate(cells, params, [None, jax.random.key(1)])
  for s in (greedy, sampled):
    words = s.split()
    assert words[0] == "the" and all(w in lm.INDEX for w in words)
    assert words[-1] == "." or len(words) == lm.GREEDY_STEPS + 1
  assert lm.generate(cells, params, [None]) == [greedy]
  task.plot(params, tmp_path)
  lines = (tmp_path / "samples.txt").read_text().splitlines()
  assert lines[0] == f"greedy:  {greedy}" and len(lines) == 4
  assert capsys.readouterr().out.splitlines() == lines


def test_rnn_is_linear_as_the_tutorial():
  config = lm_config.get_config("smoke")
  config.model.cell = "rnn"
  config.model.hidden = (4,)
  params = lm.make_task(config).init(KEY, KEY)
  x = jnp.array([[3.0, -2.0, 1.0, 0.5]])
  (cell,) = lm.make_cells(config.model)
  _, h = cell.step(params["rnn"][0], cell.initial_carry(1), x)
  p = params["rnn"][0]
  np.testing.assert_allclose(h, x @ p["w_x"] + p["b"], rtol=1e-6)


def test_bad_settings_are_reported():
  config = lm_config.get_config("smoke")
  config.model.cell = "gru"
  with pytest.raises(ValueError, match="config.model.cell"):
    lm.make_task(config)
  config = lm_config.get_config("smoke")
  config.data.batch_size = 16
  with pytest.raises(ValueError, match="config.data.batch_size"):
    lm.make_task(config)


def test_paper_variant_is_the_tutorial():
  config = lm_config.get_config("paper")
  assert config.model.cell == "rnn" and tuple(config.model.hidden) == (10,)
  assert config.model.embed == 10
  assert config.data.train_size == config.data.batch_size == 100
  assert config.num_epochs * config.steps_per_epoch == 10_000
  o = config.optimizer
  assert (o.name, o.adadelta.rho, o.adadelta.eps) == ("adadelta", 0.95, 1e-6)
  assert (o.clip, o.clip_value) == ("tensor", 5.0)


def test_dropout_acts_in_training_only_and_residual_changes_the_model():
  config = lm_config.get_config("smoke")
  params = lm.make_task(config).init(KEY, KEY)
  batch = lm.make_task(config).train_batch(KEY, 0)
  rng = jax.random.key(1)

  def loss(training):
    task = lm.make_task(config)  # The config as it stands.
    return float(task.loss(params, batch, rng, training=training)[0])

  plain = loss(False)
  assert loss(True) == pytest.approx(plain)  # rate 0: nothing dropped
  config.model.dropout = 0.5
  assert loss(False) == pytest.approx(plain)  # evaluation: no dropout
  assert loss(True) != pytest.approx(plain)
  config.model.dropout = 0.0
  config.model.residual = True  # hidden (4, 4): layer 2 adds its input
  assert loss(False) != pytest.approx(plain)
