"""scripts/profile_lstm.py: every ablation row, the step's share 1."""

import re

from scripts import profile_lstm


def test_profile_prints_every_part_against_the_step(capsys):
  text = profile_lstm.main(["--shape=2,5,1,4", "--repeats=1"])
  assert capsys.readouterr().out.strip() == text.strip()
  rows = dict(re.findall(r"^\| ([^|]+?) \| [\d.]+ \| ([\d.]+) \|$", text, re.M))
  assert rows["step, float32"] == "1.00"
  assert set(rows) == {
    "step, float32",
    "step, bfloat16 products",
    "hoisted, float32",
    "forward, float32",
    "products, float32",
    "products, bfloat16",
    "gates (element-wise), float32",
    "step, float32, unroll=2",
    "step, float32, unroll=4",
    "step, float32, unroll=8",
  }
  assert all(float(share) > 0 for share in rows.values())
