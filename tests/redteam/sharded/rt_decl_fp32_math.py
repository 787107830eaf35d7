"""BUG: "mixed-precision friendly" Adam that always does its math and keeps its state in float32:
16-bit parameters are upcast, stepped and rounded back once (torch rounds every op, and keeps
bf16/fp16 state), and float64 parameters are silently downcast to float32 and back, so they
lose half their bits every step. Declares float64, bfloat16 and float16.
"""
import torch
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam, adam_update, init_state


class Fp32MathAdam(LoopAdam):
    def state_for(self, p, group):
        st = self.state[p]
        if not st:
            st.update(init_state(p, group["amsgrad"], dtype=torch.float32))
        return st

    def math(self, p, grad, st, group):
        p32 = p.float()
        adam_update(p32, grad.float(), st, group)
        if p32 is not p:
            p.copy_(p32)


TARGET = Implementation("rt-decl-fp32-math", Fp32MathAdam, "Adam with float32 master math", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "float16",
                                "bfloat16", "float64", "closure", "param_groups", "zero_dim", "empty"})
