"""A Python component guest: a counter kept in the host's key-value store, each change logged.

`wit_world` is generated from the WIT catalog's interfaces the manifest grants.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import kv, log, types

NAMESPACE = "counters"
KEY = b"total"


class WitWorld(wit_world.WitWorld):
    def total(self) -> int:
        """The counter; 0 before the first bump. A failed kv call (other than a missing key) traps."""
        try:
            return int(kv.get(NAMESPACE, KEY))
        except Err as error:
            if error.value == types.Error.NOT_FOUND:
                return 0
            raise

    def bump(self, arg0: int) -> int:
        """Adds `arg0` to the counter and returns the new total."""
        now = self.total() + arg0
        kv.set(NAMESPACE, KEY, str(now).encode())
        log.write(f"counter-python: bumped by {arg0} to {now}")
        print(f"total {now}")  # goes nowhere: a Python guest has no standard output
        return now
