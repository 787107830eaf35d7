"""The body of a reproducer script: torch and the standard library only.

A reproducer carries `conformance.run.drive` and this file verbatim, after its own
constants (TARGET_NAME, SPEC, DEVICE, TARGET_CLAIMS, TARGET_EXPLICIT, REPRO, CASES, make_target), so it runs
without the suite installed. It reruns the minimal Case(s) of a failed check on the
target and on torch's reference path, prints where they part, and exits 1 while the
target still fails.
"""

import functools
import math
import sys

import torch

EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52,
       "complex64": 2.0**-23, "complex128": 2.0**-52}


def decoded(values):
    """JSON arrays back to floats ("nan", "inf" and "-inf" were strings)."""
    if isinstance(values, list):
        return [decoded(v) for v in values]
    return float(values)


def reference():
    cls = torch.optim.AdamW if SPEC == "adamw" else torch.optim.Adam  # noqa: F821
    return functools.partial(cls, foreach=False)


def torch_claims():
    """What torch's class takes: every keyword (unclaimed features reach it at their neutral
    values) and param-group dicts."""
    keywords = ["weight_decay", "amsgrad", "maximize", "param_groups"]
    return keywords + (["decoupled_weight_decay"] if SPEC == "adam" else [])


def run_case(factory, case, claims, explicit=()):
    arrays = {name: decoded(values) for name, values in case["arrays"].items()}
    return drive(factory, case["meta"], arrays, claims, DEVICE, explicit)  # noqa: F821


def tensors(result, i):
    """{name: {recorded step: snapshot}} of parameter i in a drive result (its state
    exists from the parameter's first step on)."""
    out = {"param": dict(zip(result["steps"], result["params"][i]))}
    for step, snap in zip(result["steps"], result["state"][i]):
        for key, value in snap.items():
            out.setdefault(key, {})[step] = value
    return out


def differences(target, torch_run, case):
    """(largest difference in eps at scale, rows) between two drive results."""
    rows, worst = [], 0.0
    for i, param in enumerate(case["meta"]["params"]):
        eps = EPS[param["dtype"]]
        mine, theirs = tensors(target, i), tensors(torch_run, i)
        for key in theirs:
            steps = sorted(set(mine.get(key, {})) & set(theirs[key]))
            if key == "step" or not steps:
                continue
            a = torch.stack([torch.view_as_real(x) if x.is_complex() else x for x in map(mine[key].get, steps)])
            b = torch.stack([torch.view_as_real(x) if x.is_complex() else x for x in map(theirs[key].get, steps)])
            finite = b[torch.isfinite(b)]
            scale = max(float(finite.pow(2).mean().sqrt()) if finite.numel() else 0.0, 1e-300)
            pattern = (torch.isfinite(a) != torch.isfinite(b)) | (torch.isnan(a) != torch.isnan(b))
            both = torch.isfinite(a) & torch.isfinite(b)
            error = ((a - b).abs() / (eps * torch.maximum(b.abs(), torch.tensor(scale, dtype=b.dtype))))
            error = torch.where(both, error, torch.zeros_like(error))
            for k, step in enumerate(steps):
                e = math.inf if bool(pattern[k].any()) else float(error[k].max()) if error[k].numel() else 0.0
                worst = max(worst, e)
                if e > 0:
                    flat = error[k].reshape(-1) if e < math.inf else pattern[k].reshape(-1).double()
                    at = int(flat.argmax())  # the largest error, or the first element whose pattern differs
                    rows.append((e, f"step {step}, param {i} {key}[{at}]: target {float(a[k].reshape(-1)[at])!r}, "
                                    f"torch {float(b[k].reshape(-1)[at])!r} ({e:.3g} eps apart)"))
    rows.sort(key=lambda r: -r[0])
    return worst, [text for _, text in rows[:8]]


#: Floating dtypes by precision: the target may hold a state entry wider than torch does.
WIDTH = {"bfloat16": 1, "float16": 1, "float32": 2, "float64": 3, "complex64": 2, "complex128": 3}


def kinds_differ(mine, theirs):
    """Lines saying where the target's state entries differ from torch's (type, dtype, shape,
    device, layout; a wider float is no difference)."""
    lines = []
    for i, (a, b) in enumerate(zip(mine["kinds"], theirs["kinds"])):
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            if x is None or y is None:
                lines.append(f"param {i}: the target keeps {'no ' if x is None else ''}{key}, torch "
                             f"{'does' if y is not None else 'does not'}")
            elif x != y and not wider(x, y):
                lines.append(f"param {i} {key}: the target holds {x}, torch {y}")
    return lines


def wider(x, y):
    """Whether state entry kind x is y held in a wider float, nothing else differing."""
    same_kind = x["dtype"].startswith("complex") == y["dtype"].startswith("complex")
    return (x["type"] == y["type"] == "Tensor" and same_kind and {**x, "dtype": 0} == {**y, "dtype": 0}
            and WIDTH.get(x["dtype"], 0) > WIDTH.get(y["dtype"], 9))


def side_by_side(target_factory, threshold):
    failing = False
    explicit = REPRO.get("explicit", TARGET_EXPLICIT)  # noqa: F821
    for n, case in enumerate(CASES, start=1):  # noqa: F821
        print(f"case {n}:\n" + "\n".join("  " + line for line in case["description"].splitlines()))
        mine = run_case(target_factory, case, TARGET_CLAIMS, explicit)  # noqa: F821
        theirs = run_case(reference(), case, torch_claims())
        if mine["error"] and not theirs["error"]:
            print(f"  the target raised where torch did not: {mine['error']}")
            failing = True
            continue
        theirs_kinds = {(t, i, kind) for t, i, kind, _ in theirs["observations"]}
        for t, i, kind, detail in mine["observations"]:
            if (t, i, kind) not in theirs_kinds:
                print(f"  step {t}{'' if i is None else f', param {i}'}: {detail} (torch does not)")
                failing = True
        for line in kinds_differ(mine, theirs):
            print(f"  {line}")
            failing = True
        worst, rows = differences(mine, theirs, case)
        print(f"  largest difference from torch: {worst:.3g} eps at scale "
              f"(more than {threshold:.3g} shows the failure)")
        for row in rows:
            print("   ", row)
        failing |= worst > threshold
    return failing


def repeated(target_factory):
    first, second = (run_case(target_factory, case, TARGET_CLAIMS, TARGET_EXPLICIT)  # noqa: F821
                     for case in (CASES[0], CASES[-1]))  # noqa: F821
    print("\n".join(CASES[0]["description"].splitlines()))  # noqa: F821
    for i in range(len(first["params"])):
        a, b = tensors(first, i), tensors(second, i)
        for key in a:
            for step, x in a[key].items():
                y = b.get(key, {}).get(step)
                if y is None or not bool(((x == y) | (x.isnan() & y.isnan())).all()):
                    print(f"  param {i} {key} differs after step {step}: the runs should be identical")
                    return True
    return False


def main():
    print(__doc__)
    target = make_target()  # noqa: F821
    mode = REPRO["mode"]  # noqa: F821
    if mode == "construct":
        try:
            target([torch.zeros(3, requires_grad=True)], **REPRO["kwargs"])  # noqa: F821
        except ValueError as e:
            print(f"the target now raises ValueError ({e}), as torch does")
            return 0
        except Exception as e:
            print(f"the target raised {type(e).__name__}: {e}; torch raises ValueError")
            return 1
        print(f"the target accepted {REPRO['kwargs']}; torch raises ValueError")  # noqa: F821
        return 1
    if mode == "sparse":
        n = REPRO["size"]  # noqa: F821
        param = torch.zeros(n, requires_grad=True, device=DEVICE)  # noqa: F821
        opt = target([param])
        param.grad = torch.sparse_coo_tensor(torch.tensor([[0, n - 1]]), torch.tensor([1.0, -1.0]), (n,), device=DEVICE)  # noqa: F821
        try:
            opt.step()
        except Exception as e:
            print(f"the target now rejects a sparse gradient ({type(e).__name__}), as torch does")
            return 0
        print("the target accepted a sparse gradient; torch raises RuntimeError")
        return 1
    if "default_dtype" in REPRO:  # noqa: F821  the failure showed under this default dtype only
        print(f"torch's default dtype: {REPRO['default_dtype']}, as the program that failed set it")  # noqa: F821
        torch.set_default_dtype(getattr(torch, REPRO["default_dtype"]))  # noqa: F821
    failing = repeated(target) if mode == "repeat" else side_by_side(target, REPRO["threshold"])  # noqa: F821
    print("\nthe target still FAILS" if failing else "\nthe target now agrees with torch on this case")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
