"""The tagging-speed rules both arms of bench/tag.py share (imported by tag_ours.py and
tag_peer.py, each in its own python): start the timed passes together, and keep tagging for the
same wall time, so that each arm is timed under the other's load."""

import os
import time


def wait_for(prefix: str | None, me: str, other: str, timeout: float = 900.0) -> None:
    """Mark `me` ready (the file PREFIX.me) and wait for PREFIX.other; no prefix: no wait."""
    if not prefix:
        return
    open(f"{prefix}.{me}", "w").close()
    t0 = time.time()
    while not os.path.exists(f"{prefix}.{other}"):
        if time.time() - t0 > timeout:
            raise RuntimeError(f"{other} never got ready to tag ({timeout:.0f} s)")
        time.sleep(0.01)


def passes(one_pass, n: int, seconds: float) -> list[float]:
    """The seconds of each call of one_pass() (which returns its own timed seconds): at least
    n calls, and more until `seconds` of wall time have gone."""
    runs, t0 = [], time.perf_counter()
    while len(runs) < n or time.perf_counter() - t0 < seconds:
        runs.append(one_pass())
    return runs
