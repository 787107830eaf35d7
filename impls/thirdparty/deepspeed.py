"""DeepSpeed's CPU Adams: DeepSpeedCPUAdam (the ZeRO-Offload optimizer, a C++ kernel) and
FusedAdam (on the CPU, DeepSpeed's CPU accelerator builds its fused C++ op). Both are AdamW
by default (``adamw_mode`` / ``adam_w_mode``), document fp32, fp16 and bf16 parameters, and
refuse AMSGrad. Each C++ op is compiled on first use (about 40 s here) into torch's
extensions cache; the survey counts that as the row's set-up."""

from impls.thirdparty import TORCH_OPTIMIZER, adapter

PACKAGE = "deepspeed>=0.14,<1"
DOCUMENTED = TORCH_OPTIMIZER - {"float64"} | {"weight_decay"}
#: DeepSpeedCPUAdam asks py-cpuinfo about the CPU at every construction, in a subprocess
#: (1.1 s here; the checks build hundreds): asked once, as one training run would.
CPU_INFO_ONCE = """
import functools

import cpuinfo

cpuinfo.get_cpu_info = functools.cache(cpuinfo.get_cpu_info)  # DeepSpeedCPUAdam runs a subprocess per construction
"""
CPUADAM = adapter("deepspeed-cpuadam", PACKAGE, "deepspeed.ops.adam:DeepSpeedCPUAdam", "adamw",
                  "deepspeed.ops.adam.DeepSpeedCPUAdam (C++, JIT-built)", claims=DOCUMENTED,
                  fixed={"adamw_mode": True}, prelude=CPU_INFO_ONCE)
FUSEDADAM = adapter("deepspeed-fusedadam", PACKAGE, "deepspeed.ops.adam:FusedAdam", "adamw",
                    "deepspeed.ops.adam.FusedAdam on the CPU accelerator (C++, JIT-built)", claims=DOCUMENTED,
                    fixed={"adam_w_mode": True})
