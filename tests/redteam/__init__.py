"""The blind red team's zoo: Adams written by people who had not read the checks, from torch's
documentation and real bug reports (the source of each is in its module's docstring), in
third-party styles: open signatures, subclasses with their own state_dict, functional and
flat-buffer wrappers, `Implementation` objects, and sharded optimizers on torch.distributed.

Each bug must be rejected at the quick profile and each correct one certified
(tests/test_redteam.py). The first pass, before the fixes it led to, is in the README
("How strong is the suite").

Each module is whole, as its author wrote it: every one is a full Adam, so they repeat one
another by design (duplicates lists them); factoring them would make them the suite's code.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Entry:
    """A red-team target: `module` holds ``TARGET``; `why` is what is wrong with it (or "correct")."""

    module: str
    kind: str  # "bug" or "correct"
    spec: str
    why: str
    world_size: int = 1

    @property
    def target(self) -> str:
        return f"tests.redteam.{self.module}:TARGET"


ENTRIES = [
    Entry("single.rt_kwargs_swallow", "bug", "adam",
          "amsgrad, maximize and decoupled_weight_decay are accepted through **kwargs and silently ignored"),
    Entry("single.rt_timm_nodecay", "bug", "adamw",
          'regroups a flat param list so tensors with ndim <= 1 (biases, norms, 0-d) get no weight decay; 2 '
          "groups instead of 1"),
    Entry("single.rt_clip_in_step", "bug", "adamw",
          "clips every parameter's gradient to norm 1 in place inside step() (BertAdam max_grad_norm=1.0)"),
    Entry("single.rt_ds_adam_w_mode", "bug", "adam",
          "adam_w_mode defaults to True, so 'Adam' with weight_decay applies AdamW's decoupled decay instead of "
          "L2"),
    Entry("single.rt_zero_grad_zeros", "bug", "adam",
          'zero_grad() keeps the pre-2.0 default set_to_none=False, so the next step() still moves every '
          "parameter with zero grads"),
    Entry("single.rt_lazy_skip_zero", "bug", "adam",
          "'lazy' Adam: a parameter whose gradient is exactly all-zero is skipped (no moment decay, no step, no "
          "momentum move)"),
    Entry("single.rt_closure_twice", "bug", "adam",
          'step(closure) evaluates the closure itself (to log the grad norm) and passes it on to '
          "super().step(closure): closure runs twice"),
    Entry("single.rt_ema_noreturn", "bug", "adamw",
          "step(closure) updates correctly and keeps an EMA, but returns None instead of the closure's loss"),
    Entry("single.rt_step_fp16", "bug", "adam",
          "state['step'] is a float16 tensor: it sticks at 2048 (2049 not representable), freezing bias "
          "correction; step dtype float16"),
    Entry("single.rt_step_param_dtype", "bug", "adam",
          "state['step'] created with the parameter's dtype/device: bf16 counter sticks at 256, fp16 at 2048; "
          "step dtype follows the param"),
    Entry("single.rt_closure_nograd", "bug", "adamw",
          '@torch.no_grad() step() calls closure() without torch.enable_grad(), so a closure that calls '
          "backward() raises"),
    Entry("single.rt_inplace_wd_grad", "bug", "adam",
          "L2 weight decay added to p.grad in place (grad.add_(p, alpha=wd)), as torch 0.4/1.0 Adam did"),
    Entry("single.rt_hf_adamw", "bug", "adamw",
          'eps added before bias correction (eps-hat form), decay applied after the update, int step; no '
          "amsgrad/maximize keywords"),
    Entry("single.rt_bertadam", "bug", "adamw",
          'no bias correction at all (m / (sqrt(v)+eps)), decoupled decay added to the update; state keys '
          "next_m/next_v"),
    Entry("single.rt_group_step", "bug", "adam",
          "one step counter per param group (group['step']) used for every parameter's bias correction; no "
          "per-param step in state"),
    Entry("single.rt_load_casts_step", "bug", "adam",
          "load_state_dict casts every state tensor, step included, to the param's dtype: bf16 step sticks at "
          "256 after resume"),
    Entry("single.rt_amsgrad_vhat", "bug", "adam",
          'AMSGrad keeps max of the bias-corrected v_hat instead of max of v divided by the current bias '
          "correction"),
    Entry("single.rt_maximize_wd_sign", "bug", "adam",
          "maximize negates the gradient after the L2 term was added, so weight decay becomes weight growth"),
    Entry("single.rt_group_defaults", "bug", "adamw",
          "lr read per group, but betas/eps/weight_decay read from self.defaults: per-group values ignored"),
    Entry("single.rt_no_validation", "bug", "adam",
          'no hyperparameter validation: accepts betas=(1.0, .), lr<0, eps<0, wd<0 that torch rejects with '
          "ValueError"),
    Entry("single.rt_rejects_beta0", "bug", "adamw",
          "over-strict validation: raises for lr=0, eps=0, beta1=0 or beta2=0, which torch accepts"),
    Entry("single.rt_statedict_whitelist", "bug", "adam",
          "state_dict keeps only step/exp_avg/exp_avg_sq 'so checkpoints load into plain Adam': max_exp_avg_sq "
          "lost, re-zeroed on resume"),
    Entry("single.rt_mu_nu_rename", "bug", "adam",
          'state kept as optax-style mu/nu/count; state_dict translates to torch names but inherited '
          "load_state_dict does not translate back: moments restart from zero"),
    Entry("single.rt_complex_gg", "bug", "adam",
          "complex params: second moment accumulates |g|^2 via grad.conj() instead of torch's view_as_real "
          "(re^2 and im^2 separately)"),
    Entry("single.rt_bc_off_by_one", "bug", "adamw",
          'step counter incremented after the update, bias-correction exponent clamped to 1: steps 1 and 2 both '
          "use t=1, later steps lag one"),
    Entry("single.rt_cached_lr", "bug", "adamw",
          "each group's lr cached as a float at construction: scheduler / manual changes of "
          "param_groups[i]['lr'] ignored"),
    Entry("single.rt_zeros_shape", "bug", "adam",
          'moments allocated with torch.zeros(p.shape): default dtype float32 and contiguous whatever the '
          "parameter (f64 loses precision, half gains it, complex fails)"),
    Entry("single.rt_composer_decoupled", "bug", "adamw",
          'weight decay scaled by lr/initial_lr instead of lr (p *= 1 - wd at constant lr); default betas (0.9, '
          "0.95); extra 'initial_lr' group key"),
    Entry("single.rt_optax_eps_root", "bug", "adam",
          "eps placed inside the square root (optax eps_root): sqrt(v_hat + eps) instead of sqrt(v_hat) + eps"),
    Entry("single.rt_functional_pdata", "bug", "adamw",
          'parameters replaced (p.data = new_p) instead of updated in place: values right, but views/aliases of '
          "a parameter go stale and data_ptr changes"),
    Entry("single.rt_keras_iterations", "bug", "adam",
          'one optimizer-wide iterations counter, not in state_dict: resume restarts bias correction at t=1; '
          "counts steps without grads; no per-param step"),
    Entry("single.rt_flat_reshape", "bug", "adam",
          'reshape(-1) copies a non-contiguous (transposed/sliced) parameter, so its in-place update is lost; '
          "state still advances"),
    Entry("single.rt_flat_none_zero", "bug", "adam",
          'a missing gradient (p.grad is None) is replaced by zeros: state created, step advances, momentum and '
          "decay keep moving the param"),
    Entry("single.rt_frozen_param_list", "bug", "adamw",
          "parameters added later with add_param_group are never updated"),
    Entry("single.rt_graph_bake", "bug", "adam",
          'bias corrections and step size baked as Python floats at capture (from the pre-increment count): '
          "every step from the third on uses step 2's bias correction"),
    Entry("single.rt_master_fp32", "bug", "adam",
          "half-precision params are stepped on an fp32 master copy (extra 'master_param' state, fp32 moments) "
          "instead of in their own dtype"),
    Entry("single.rt_fused_f64_downcast", "bug", "adam",
          "the 'kernel' computes every dtype in float32 (MATH_T = float): float64 params lose precision "
          "(fp16/bf16 rounded once)"),
    Entry("single.rt_bf16_stochastic", "bug", "adamw",
          'bf16 weights written back with stochastic rounding drawn from the global RNG (torchao '
          "bf16_stochastic_round)"),
    Entry("single.rt_fp16_upcast_param", "bug", "adam",
          "float16 params converted to float32 in place on the first step (p.data = p.data.float())"),
    Entry("single.rt_default_dtype", "bug", "adam",
          'step() switches the global default dtype to float64 for its bias corrections and resets it to a '
          "hard-coded float32"),
    Entry("single.rt_tensor_lr_float", "bug", "adamw",
          "a Tensor lr is converted with .item() in __init__: in-place updates of the user's lr tensor are "
          "ignored; group lr is a float"),
    Entry("single.rt_skip_nonfinite", "bug", "adam",
          "skips the whole group's step when any gradient is inf/NaN (GradScaler-style) where torch writes "
          "inf/NaN and advances step"),
    Entry("single.ok_partial_decoupled", "correct", "adamw", "correct"),
    Entry("single.ok_kwargs_factory", "correct", "adam", "correct"),
    Entry("single.ok_subclass_logging", "correct", "adamw", "correct"),
    Entry("single.ok_scratch_f64", "correct", "adam", "correct"),
    Entry("single.ok_functional_lists", "correct", "adam", "correct"),
    Entry("single.ok_impl_object", "correct", "adam", "correct"),
    Entry("single.ok_foreach_impl", "correct", "adamw", "correct"),
    Entry("sharded.rt_zero_contig_bcast", "bug", "adam",
          'post-step broadcast goes through p.contiguous(): non-contiguous replicas on non-owner ranks stay '
          "stale", 2),
    Entry("sharded.rt_zero_tail_drop", "bug", "adam",
          'flat element partition per=total//world: a param starting past world*per belongs to no rank (never '
          "stepped, no state)", 2),
    Entry("sharded.rt_zero_grad_sum", "bug", "adam",
          "optimizer all-reduces p.grad itself with SUM (in place) and never divides by world size", 2),
    Entry("sharded.rt_zero_rank_clock", "bug", "adam",
          'bias correction uses a per-rank step() counter (not the per-param step, not checkpointed); '
          "state['step'] itself is right", 2),
    Entry("sharded.rt_zero_save_rank0", "bug", "adam",
          "save() = rank 0's unconsolidated state_dict broadcast to all: other ranks' state lost in checkpoints", 2),
    Entry("sharded.rt_zero_flat_dtype", "bug", "adam",
          "replicas refreshed through one flat all_gather buffer in the FIRST param's dtype (owner included): "
          "mixed dtypes rounded", 2),
    Entry("sharded.rt_zero_unsynced_groups", "bug", "adam",
          "ZeRO wrapper around torch.optim.Adam never copies the exposed param_groups' hyperparameters into the "
          "wrapped optimizer", 2),
    Entry("sharded.rt_zero_writes_grad", "bug", "adam",
          'owner folds maximize and L2 decay into p.grad in place (neg_, add_): params right, p.grad '
          "overwritten on the owner only", 2),
    Entry("sharded.rt_fsdp_empty_shard_hang", "bug", "adam",
          'AMP-style overflow all_reduce per param, but params with an empty LOCAL shard are skipped first: '
          "collective entered by some ranks only (hang)", 2),
    Entry("sharded.rt_fsdp_empty_skip", "bug", "adam",
          'params with an empty local shard skipped per rank: no hang, values right, but that rank holds no '
          "state for them", 2),
    Entry("sharded.rt_fsdp_shard_fp64", "bug", "adam",
          'math in float64 for local shards <=16 elements, float32 otherwise: ulp-level results that depend on '
          "the world size", 2),
    Entry("sharded.rt_fsdp_replicate_allreduce", "bug", "adam",
          "grads of Replicate (0-d) params all-reduced with SUM 'like DDP': 0-d params step with world_size*g", 2),
    Entry("sharded.rt_fsdp_local_state", "bug", "adam",
          'state kept as plain local tensors (zeros_like of the local shard), not DTensor: state_dict holds '
          "per-rank rows", 2),
    Entry("sharded.rt_decl_fp32_math", "bug", "adam",
          'declares float64/bfloat16/float16 but does all math and keeps state in float32 (float64 params '
          "downcast each step)"),
    Entry("sharded.rt_decl_amsgrad_hat", "bug", "adam",
          "AMSGrad keeps the max of the bias-corrected v_hat (optax formulation) instead of raw v"),
    Entry("sharded.rt_decl_half_consts", "bug", "adam",
          '16-bit path casts lr/betas/eps to the param dtype: bf16 beta2=0.999 -> 1.0 (nan), fp16 beta1 -> '
          "0.8999, eps -> 0"),
    Entry("sharded.rt_decl_closure_nograd", "bug", "adam",
          "declares closure, but step is @torch.no_grad and calls closure() without enable_grad"),
    Entry("sharded.rt_decl_cached_hparams", "bug", "adam",
          "hyperparameters cached from defaults at __init__: per-group values, add_param_group's, later lr "
          "changes and in-place Tensor lr ignored"),
    Entry("sharded.rt_decl_maximize_decay", "bug", "adam",
          "maximize negates after the L2 term: g = -(grad + wd*p) instead of -grad + wd*p"),
    Entry("sharded.rt_decl_eps_hat", "bug", "adam",
          "TF1 epsilon-hat form: lr_t = lr*sqrt(bc2)/bc1, p -= lr_t*m/(sqrt(v)+eps)"),
    Entry("sharded.rt_decl_complex_conj", "bug", "adam",
          "complex second moment g*conj(g) per complex number instead of per real/imag component (view_as_real)"),
    Entry("sharded.ok_zero_roundrobin", "correct", "adam", "correct", 2),
    Entry("sharded.ok_zero_flat_adamw", "correct", "adamw", "correct", 2),
    Entry("sharded.ok_zero_wrap", "correct", "adam", "correct", 2),
    Entry("sharded.ok_fsdp_local", "correct", "adam", "correct", 2),
    Entry("sharded.ok_decl_loop_adamw", "correct", "adamw", "correct"),
    Entry("sharded.ok_decl_foreach", "correct", "adam", "correct"),
]
