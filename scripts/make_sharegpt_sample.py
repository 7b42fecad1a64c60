"""Write loadgen/data/sharegpt_sample.json: a small ShareGPT-format dataset written by this project.

Deterministic (seeded), no third-party text: conversations are assembled from the topics and phrasings
below, with replies of varied length so output lengths spread as real chat traffic does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "loadgen" / "data" / "sharegpt_sample.json"

TOPICS = [
    ("a sourdough starter", "feeding schedule", "flour and water at equal weight"),
    ("a small vegetable garden", "watering plan", "deep watering twice a week"),
    ("a home network", "Wi-Fi dead zones", "a second access point on a wired backhaul"),
    ("a bicycle chain", "squeaking", "cleaning then a thin coat of chain oil"),
    ("a job interview", "nervousness", "rehearsing three stories out loud"),
    ("a monthly budget", "irregular expenses", "a sinking fund for each yearly bill"),
    ("a Python script", "slow loops", "moving the work into vectorised operations"),
    ("a houseplant", "yellow leaves", "letting the soil dry between waterings"),
    ("a running plan", "shin pain", "adding distance by no more than a tenth a week"),
    ("a team meeting", "running over time", "a written agenda with a timekeeper"),
    ("a database table", "slow queries", "an index on the column in the WHERE clause"),
    ("a camping trip", "cold nights", "a sleeping pad with a higher insulation rating"),
]
OPENERS = ["How do I deal with {p} in {t}?", "What should I know about {p} for {t}?", "Any tips on {p} with {t}?"]
FOLLOW = ["Why does that work?", "What if that does not help?", "Can you make it a short checklist?"]
SENTENCES = [
    "The usual cause is simpler than it looks, so start with the basics.",
    "Try {f} first, and change one thing at a time so you can tell what helped.",
    "Keep notes for a week; patterns show up quickly once they are written down.",
    "If nothing changes after two weeks, the problem is probably elsewhere.",
    "Most people overdo the fix at first, which hides whether it worked.",
    "A small, steady adjustment beats a large one made once.",
]


def reply(rng: random.Random, fix: str) -> str:
    n = rng.choice([1, 2, 3, 5, 8, 12])
    return " ".join(rng.choice(SENTENCES).format(f=fix) for _ in range(n))


def main() -> None:
    rng = random.Random(2024)
    out = []
    for i, (thing, problem, fix) in enumerate(TOPICS * 2):
        turns = [{"from": "human", "value": rng.choice(OPENERS).format(p=problem, t=thing)}]
        turns.append({"from": "gpt", "value": reply(rng, fix)})
        for _ in range(rng.randrange(0, 3)):
            turns.append({"from": "human", "value": rng.choice(FOLLOW)})
            turns.append({"from": "gpt", "value": reply(rng, fix)})
        out.append({"id": f"sample-{i + 1:03d}", "conversations": turns})
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
