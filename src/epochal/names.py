"""Human-readable run names such as 'brisk-heron-3'."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "dapper", "eager", "fancy", "gentle", "glad",
    "golden", "hardy", "jolly", "keen", "lively", "lucky", "mellow", "merry", "nimble", "proud", "quick",
    "quiet", "rapid", "sharp", "shy", "silver", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise",
)
_NOUNS = (
    "badger", "bison", "crane", "dingo", "eagle", "falcon", "ferret", "gecko", "heron", "ibis", "jackal",
    "koala", "lemur", "lynx", "marten", "newt", "ocelot", "otter", "panda", "puffin", "quail", "raven",
    "salmon", "stork", "tapir", "toucan", "urchin", "viper", "walrus", "wombat", "yak", "zebra",
)


def random_name(number: int) -> str:
    """A name like 'swift-otter-7', where ``number`` is usually the run's number in its project."""
    rng = random.SystemRandom()  # the global generator belongs to the user's experiment
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{number}"
