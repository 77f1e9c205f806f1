"""The pass/fail tally every Python test harness keeps.

A harness makes one Tally named after its stage, calls check() for each
assertion and ends with sys.exit(tally.summary()): the last line of a
stage's log is always "NAME: P passed, F failed", and a failure prints
what failed (and its detail, cut short) the moment it happens, so a log
cut off by a timeout still says what went wrong.
"""
import sys


class Tally:
    def __init__(self, name, quiet_ok=False, detail_max=800):
        self.name = name
        self.quiet_ok = quiet_ok  # print only failures
        self.detail_max = detail_max
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            if not self.quiet_ok:
                print(f"ok   {what}", flush=True)
        else:
            self.failed += 1
            tail = f" {str(detail)[:self.detail_max]}" if detail != "" else ""
            print(f"FAIL {what}{tail}", flush=True)
        return cond

    def summary(self):
        """Print the closing line; the exit status the harness should give."""
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0

