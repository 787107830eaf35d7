"""BUG: ZeRO-1 that counts steps once per rank (self._t += 1 per step() call) and uses that
count for bias correction. state["step"] is still counted per parameter, so the state looks
right; but a parameter that had no gradient on some step gets the wrong bias correction,
and _t is not in the state_dict, so after load_state_dict the bias correction restarts at t=1.
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, adam_update, consolidated, owned_state


class RankClockZero(ZeroAdam):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._t = 0

    def before_step(self):
        super().before_step()
        self._t += 1

    def math(self, p, grad, st, group):
        adam_update(p, grad, st, group, step=self._t)


def zero_adam(params, **kw):
    return RankClockZero(params, **kw)


TARGET = Implementation("rt-zero-rank-clock", zero_adam, "ZeRO-1 with one step clock per rank", "adam",
                        sharding=Sharding("full", state=owned_state, save=consolidated))
