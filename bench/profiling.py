"""Sampling profiles of pagerd under load with py-spy, summarised as hot spots.

Two views of the same load, each from its own py-spy run:

- wall: every thread sampled whether it runs or waits (`--idle`), so a share is a share of
  wall-clock time of that thread. It shows where requests wait: the COMMIT's fsync, the
  event loop's select, locks. A thread waiting for the GIL shows at the Python line where
  it waits, typically right after a call that released it.
- gil: only the thread holding the GIL (`--gil`); a share is a share of wall time with the
  GIL held. Since one Python process runs Python code on one core at most, this is where
  the CPU-bound work is, whichever thread does it.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^thread \(\d+\): (?P<name>.*)$")
# Frames where a thread waits for work rather than doing any (file, function).
_IDLE = {
    ("selectors.py", "EpollSelector.select"),
    ("threading.py", "Condition.wait"),
    ("threading.py", "Event.wait"),
    ("concurrent/futures/thread.py", "_worker"),
}
# Entry points on every stack of the main thread: they say only that it ran.
_ENTRY_FILES = ("pagerd/cli.py", "pagerd/__main__.py")


@dataclass(frozen=True)
class Frame:
    """One stack frame as py-spy names it."""

    func: str
    file: str
    line: int | None

    @property
    def function(self) -> str:
        """file:function, as the report names it."""
        return f"{self.file}:{self.func}"

    @property
    def where(self) -> str:
        """file:line function."""
        return f"{self.file}:{self.line} {self.func}" if self.line else self.function

    @property
    def idle(self) -> bool:
        """Whether a thread whose innermost frame is this one is waiting for work."""
        return (self.file, self.func) in _IDLE


def parse_frame(text: str) -> Frame:
    """A py-spy raw frame: "func (file:line)"."""
    found = _FRAME.match(text)
    if found is None:
        return Frame(text, "?", None)
    line = found["line"]
    return Frame(found["func"], found["file"], int(line) if line else None)


@dataclass
class Profile:
    """Samples of one py-spy run: per thread name, stacks (outermost first) and counts."""

    rate: int
    seconds: float
    stacks: list[tuple[str, tuple[Frame, ...], int]] = field(default_factory=list)

    @property
    def per_thread(self) -> int:
        """How many samples one thread gives over the run."""
        return max(1, round(self.rate * self.seconds))

    def threads(self) -> Counter[str]:
        """Samples per thread."""
        counts: Counter[str] = Counter()
        for thread, _, count in self.stacks:
            counts[thread] += count
        return counts

    def busy(self) -> Counter[str]:
        """Samples per thread that were not waiting for work."""
        counts: Counter[str] = Counter()
        for thread, frames, count in self.stacks:
            if frames and not frames[-1].idle:
                counts[thread] += count
        return counts

    def self_lines(self, thread: str | None = None) -> Counter[tuple[str, str]]:
        """Busy samples by innermost frame (thread, file:line function)."""
        counts: Counter[tuple[str, str]] = Counter()
        for name, frames, count in self.stacks:
            if frames and not frames[-1].idle and thread in (None, name):
                counts[name, frames[-1].where] += count
        return counts

    def inclusive(self, prefix: str, thread: str | None = None) -> Counter[str]:
        """Busy samples by each function under `prefix` anywhere on the stack.

        A function on (nearly) every busy stack of its thread, such as the thread's own
        loop or the CLI's entry point, says only that the thread ran: it is left out.
        """
        per_thread: dict[str, Counter[str]] = {}
        for name, frames, count in self.stacks:
            if not frames or frames[-1].idle or thread not in (None, name):
                continue
            counts = per_thread.setdefault(name, Counter())
            for function in {f.function for f in frames
                             if f.file.startswith(prefix) and f.file not in _ENTRY_FILES}:
                counts[function] += count
        busy = self.busy()
        total: Counter[str] = Counter()
        for name, counts in per_thread.items():
            for function, count in counts.items():
                if count < 0.9 * busy[name]:
                    total[function] += count
        return total


def load(path: Path, rate: int, seconds: float) -> Profile:
    """Read py-spy's raw (collapsed stack) output written with `--threads`."""
    profile = Profile(rate, seconds)
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        parts = stack.split(";")
        head = _THREAD.match(parts[0])
        thread = head["name"] if head else "?"
        frames = tuple(parse_frame(text) for text in parts[1:])
        profile.stacks.append((thread, frames, int(count)))
    return profile


def record(pid: int, seconds: float, out: Path, *, gil: bool, rate: int = 200,
           delay: float = 0.0) -> subprocess.Popen[bytes]:
    """Start py-spy on `pid` for `seconds` after `delay`; wait on it, then `load`."""
    cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
           "--rate", str(rate), "--format", "raw", "--threads", "--nonblocking",
           "--output", str(out), "--gil" if gil else "--idle"]
    if delay > 0:
        # A shell sleep lines py-spy's start up with the load without a thread here.
        cmd = ["sh", "-c", f'sleep {delay:g} && exec "$@"', "py-spy", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:5.1f}%"


def wall_report(profile: Profile, top: int = 10) -> list[str]:
    """Per thread: busy share and the lines it spends its wall time on."""
    lines = []
    whole = profile.per_thread
    for thread, busy in profile.busy().most_common():
        if busy < whole * 0.02:
            continue
        lines.append(f"  thread {thread}: busy {_pct(busy, whole)} of wall time")
        for (_, where), count in profile.self_lines(thread).most_common(top):
            lines.append(f"    {_pct(count, whole)}  {where}")
    main = "MainThread"
    lines.append(f"  pagerd functions, inclusive, in {main} (% of its wall time):")
    for function, count in profile.inclusive("pagerd/", main).most_common(top):
        lines.append(f"    {_pct(count, whole)}  {function}")
    return lines


def gil_report(profile: Profile, top: int = 12) -> list[str]:
    """Who holds the GIL, and doing what."""
    whole = profile.per_thread
    held = sum(profile.threads().values())
    lines = [f"  GIL held {_pct(held, whole)} of wall time; by thread: " + ", ".join(
        f"{name} {_pct(count, whole).strip()}" for name, count in profile.threads().most_common()
    )]
    lines.append("  innermost lines holding the GIL (% of wall time):")
    for (thread, where), count in profile.self_lines().most_common(top):
        lines.append(f"    {_pct(count, whole)}  {where}  [{thread}]")
    lines.append("  pagerd functions holding the GIL, inclusive (% of wall time):")
    for function, count in profile.inclusive("pagerd/").most_common(top):
        lines.append(f"    {_pct(count, whole)}  {function}")
    return lines
