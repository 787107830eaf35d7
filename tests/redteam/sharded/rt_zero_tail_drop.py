"""BUG: ZeRO-1 partitioned by elements: rank r owns the parameters whose first element lies in
[r*per, (r+1)*per), per = total // world. A parameter starting in the remainder past
world*per belongs to no rank: it is never stepped and gets no state. That is any empty
parameter at the end of the list (at every world size), and a last parameter smaller than
total % world (e.g. a trailing 0-d or 1-element bias when the total is odd, at 2 ranks).
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


class TailDropZero(ZeroAdam):
    def owners(self):
        params = self.all_params()
        per = max(sum(p.numel() for p in params) // self.world, 1)
        owners, offset = {}, 0
        for p in params:
            if offset // per < self.world:
                owners[p] = offset // per
            offset += p.numel()
        return owners


def zero_adam(params, **kw):
    return TailDropZero(params, **kw)


TARGET = Implementation("rt-zero-tail-drop", zero_adam, "ZeRO-1, flat element partition", "adam",
                        sharding=Sharding("full", state=owned_state, save=consolidated))
