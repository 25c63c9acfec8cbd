"""Command line: ``python -m core <command> ...``.

Commands:
    attack         attack one image and write the result as PNG
    evaluate       clean and robust accuracy, and the mean of every measure
    models         list the model registry and what is available offline
    measures       list the perceptual measures
    train-bundled  regenerate a bundled classifier's weights and card
    train          train on a group data set: erm, wdro, wdro-naive, pgd-at, group-dro
                   (also under ``torchrun --nproc_per_node=N -m core train ...``)
    fairness       per-group accuracy, worst group and gap of models, clean or under attack

Every error is one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from core.attacks import ATTACKS, Attack, AttackResult
from core.attacks.options import DEFAULT_BUDGET, DEFAULT_LOSS, AttackOptions
from core.data import FASHION_MNIST_CLASSES, load_fashion_mnist
from core.device import default_device
from core.evaluation import evaluate
from core.fileio import WriteError, check_output
from core.imageio import load_tensor, save_png
from core.measures import DEFAULT_COST, MEASURES
from core.models import MODELS, get_model_spec, load_model, load_torchscript
from core.training import METHODS, TrainConfig

EXIT_USAGE = 2
EXIT_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


COUNT_RANGE = "expected a whole number from {lo:,} to {hi:,}, got {value!r}"


def _method_options() -> dict:
    """``{Option: [names of the methods that read it]}`` over the registered training methods."""
    from core.training import METHOD_CLASSES

    out: dict = {}
    for cls in METHOD_CLASSES.values():
        for option in cls.options:
            out.setdefault(option, []).append(cls.name)
    return out


def count(lo: int, hi: int):
    """An argparse type: a whole number in [lo, hi]. The upper bounds keep the largest accepted value within a
    24 GB machine and a day of CPU (e.g. ``--bootstrap`` 100,000 resamples, ``--width`` 256 filters, ``--steps``
    10,000); anything else is one usage line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(COUNT_RANGE.format(lo=lo, hi=hi, value=text)) from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(COUNT_RANGE.format(lo=lo, hi=hi, value=text))
        return value

    parse.__name__ = "count"  # argparse names the type in its message
    return parse


METRIC_RENAMED = "note: --metric is now --measure (the old name works until the next release)"


class _Deprecated(argparse.Action):
    """``--metric``: the transport cost's name before 2026-12, kept for one release with a one-line notice."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(METRIC_RENAMED, file=sys.stderr)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    attack = commands.add_parser("attack", help="attack one image and write the result as PNG")
    attack.add_argument("--model", required=True,
                        help=f"registry name ({', '.join(MODELS)}) or a TorchScript file (torch.jit.save; "
                             "TorchScript is code that can read and write files: load only files you trust)")
    attack.add_argument("--channels", type=int, choices=(1, 3), default=3, help="TorchScript model: input channels")
    attack.add_argument("--size", type=count(1, 4096), help="TorchScript model: input side (default: the image's own size)")
    attack.add_argument("--image", required=True, help="image file (PNG, JPEG, ...)")
    attack.add_argument("--weights", help="a local state-dict file to load instead of the model's own weights")
    attack.add_argument("--attack", required=True, choices=sorted(ATTACKS))
    _add_attack_options(attack)
    attack.add_argument("--label", type=int, help="true class of the image (default: the clean prediction)")
    attack.add_argument("--out", required=True, help="where to write the attacked image (PNG; an existing file "
                        "is refused unless --force)")
    attack.add_argument("--force", action="store_true", help="replace an existing --out file")
    attack.add_argument("--json", action="store_true", help="print one JSON object")

    evaluate = commands.add_parser("evaluate", help="clean and robust accuracy on the model's test images")
    evaluate.add_argument("--model", required=True, help=f"registry name ({', '.join(MODELS)})")
    evaluate.add_argument("--weights", help="a local state-dict file to load instead of the model's own weights")
    evaluate.add_argument("--n", type=count(1, 60_000), default=1000, help="test images to evaluate (default 1000)")
    evaluate.add_argument("--attack", choices=sorted(ATTACKS), help="attack to evaluate against")
    _add_attack_options(evaluate)
    evaluate.add_argument("--batch-size", type=count(1, 4096), default=250)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    models = commands.add_parser("models", help="list the model registry")
    models.add_argument("--json", action="store_true")

    measures = commands.add_parser("measures", help="list the perceptual measures")
    measures.add_argument("--json", action="store_true")

    train = commands.add_parser("train-bundled", help="regenerate a bundled classifier's weights and card")
    train.add_argument("--model", required=True, choices=[n for n, s in MODELS.items() if s.weights])
    train.add_argument("--epochs", type=count(1, 1000), help="override the number of epochs")

    _add_train_command(commands)
    _add_fairness_command(commands)
    return parser


def _add_train_command(commands) -> None:
    """``train``: every option of :class:`TrainConfig`, the methods' own from their declarations."""
    fit = commands.add_parser("train", help=f"train on a group data set ({', '.join(METHODS)})")
    fit.add_argument("--dataset", default="fmnist-groups",
                     help="group data set (fmnist-groups, fmnist-shortcut, celeba, csv)")
    fit.add_argument("--root", help="data root of the data set (celeba: folder holding celeba/; csv: the CSV file)")
    fit.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                     help="option of the data set loader, e.g. n_train=3000 (repeatable)")
    fit.add_argument("--method", required=True, choices=list(METHODS))
    fit.add_argument("--metric", dest="measure", choices=list(MEASURES), action=_Deprecated, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS)
    fit.add_argument("--measure", default=DEFAULT_COST, choices=list(MEASURES),
                     help=f"W-DRO transport cost (default {DEFAULT_COST})")
    fit_form = fit.add_mutually_exclusive_group()
    fit_form.add_argument("--budget", type=float, help=f"W-DRO budget form: mean cost delta (default {TrainConfig.budget})")
    fit_form.add_argument("--gamma", type=float, help="W-DRO penalty form: fixed multiplier")
    fit.add_argument("--epochs", type=count(1, 1000), default=TrainConfig.epochs)
    fit.add_argument("--seed", type=count(0, 2**31 - 1), default=0)
    fit.add_argument("--batch-size", type=count(1, 4096), default=TrainConfig.batch_size)
    fit.add_argument("--lr", type=float, default=TrainConfig.lr)
    fit.add_argument("--width", type=count(1, 256), default=TrainConfig.width, help="filters of the first convolution")
    fit.add_argument("--budget-mode", choices=("distributional", "pointwise"), default=TrainConfig.budget_mode,
                     help="wdro budget form: the batch's mean cost <= budget (distributional, default) or every "
                          "example's cost <= budget (pointwise), as WDRO(budget_mode=...)")
    for option, names in _method_options().items():  # each method's own fields, declared by the method
        fit.add_argument("--" + option.field.replace("_", "-"), default=getattr(TrainConfig, option.field),
                         type=float if option.low is None else count(option.low, option.high),
                         help=f"{', '.join(names)}: {option.help}")
    fit.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    fit.add_argument("--half", action="store_true", help="store model.pt in float16 (half the size)")
    fit.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    fit.add_argument("--out", required=True, help="output folder: checkpoint.pt, model.pt, train.json (a folder "
                     "that holds a run is refused unless --resume or --force)")
    fit.add_argument("--force", action="store_true", help="replace the run in --out")
    fit.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def _add_fairness_command(commands) -> None:
    fair = commands.add_parser("fairness", help="per-group accuracy, worst group and gap of models")
    fair.add_argument("--dataset", default="fmnist-groups")
    fair.add_argument("--root", help="data root of the data set")
    fair.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE")
    fair.add_argument("--split", default="test", choices=("train", "val", "test"))
    fair.add_argument("--model", action="append", required=True, metavar="NAME_OR_PATH",
                      help="registry name or a training output folder / model.pt / checkpoint.pt (repeatable)")
    fair.add_argument("--n", type=count(1, 1_000_000), help="evaluate a seeded random subset of this many images")
    fair.add_argument("--attack", choices=sorted(ATTACKS), help="evaluate under this attack")
    _add_attack_options(fair)
    fair.add_argument("--bootstrap", type=count(0, 100_000), default=1000, help="bootstrap resamples for the CIs (0: none)")
    fair.add_argument("--batch-size", type=count(1, 4096), default=250)
    fair.add_argument("--json", action="store_true", help="print a JSON list, one object per model")


def _add_attack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", dest="measure", choices=list(MEASURES), action=_Deprecated, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS)
    parser.add_argument("--measure", default=DEFAULT_COST, choices=list(MEASURES),
                        help=f"transport cost of wdro and wdro-flips (default {DEFAULT_COST})")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--budget", type=float, help=f"wdro: DRO budget delta (default {DEFAULT_BUDGET})")
    form.add_argument("--gamma", type=float, help="wdro: fixed multiplier (penalty form)")
    form.add_argument("--eps", type=float, help="pgd-linf, pgd-l2, fgsm: radius of the ball; "
                      "ddn, alma-ssim, perc-al, wdro-flips: optional cap on their distance (L2, 1 - SSIM, CIEDE2000, the cost)")
    parser.add_argument("--linf-cap", type=float, help="wdro: cap on the L-inf norm of the perturbation")
    parser.add_argument("--steps", type=count(1, 10_000), help="ascent steps (default: the attack's own; 100 for wdro, "
                                                                "50 for wdro-flips, 10 for pgd)")
    parser.add_argument("--loss", choices=("margin", "ce"), default=DEFAULT_LOSS,
                        help=f"wdro, pgd, fgsm: margin (capped Carlini-Wagner) or cross-entropy (default {DEFAULT_LOSS})")
    parser.add_argument("--seed", type=count(0, 2**31 - 1), default=0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = default_device(args.device)
        if args.command == "attack":
            return _attack(args, device)
        if args.command == "evaluate":
            return _evaluate(args, device)
        if args.command == "models":
            return _models(args)
        if args.command == "measures":
            return _measures(args)
        if args.command == "train":
            return _train(args, args.device)
        if args.command == "fairness":
            return _fairness(args, device)
        return _train_bundled(args, device)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):
            raise
        print(f"error: not enough memory for this run ({_one_line(err)[:200]}); try a smaller --batch-size, "
              "--width or --n", file=sys.stderr)
        return EXIT_ERROR


def _attack(args: argparse.Namespace, device: torch.device) -> int:
    if args.model not in MODELS and Path(args.model).is_file():  # a user's TorchScript classifier
        model = load_torchscript(args.model, device=device)
        x = load_tensor(args.image, channels=args.channels, size=args.size).to(device)
        try:
            with torch.no_grad():
                labels: Sequence[str] = [f"class {i}" for i in range(model(x).shape[1])]
        except RuntimeError as err:  # the scripted forward rejected the input (channels, size, ...)
            raise ValueError(f"the TorchScript model failed on an image of shape {tuple(x.shape)} "
                             f"(see --channels and --size): {_one_line(err)[:300]}") from None
    else:
        spec = get_model_spec(args.model)
        model = load_model(args.model, device=device, weights=args.weights)
        x = load_tensor(args.image, channels=spec.channels, size=spec.input_size).to(device)
        labels = spec.labels
    attack = _build_attack(args, model)
    with torch.no_grad():
        pred = model(x).argmax(1)
    if args.label is not None and not 0 <= args.label < len(labels):
        raise ValueError(f"--label: expected a class in [0, {len(labels)}), got {args.label}")
    y = torch.tensor([args.label], device=device) if args.label is not None else pred
    check_output(args.out, force=args.force)  # refused before the attack runs
    result = attack(x, y, seed=args.seed)
    out = save_png(result.x_adv[0], args.out, replace=args.force)
    report = _attack_report(result, labels, out=str(out), model=args.model, image=args.image)
    if args.json:
        print(json.dumps(report))
    else:
        print(_format_attack(report))
    return 0


def _build_attack(args: argparse.Namespace, model: torch.nn.Module) -> Attack:
    """The attack named by ``--attack`` with the options that apply to it (others are refused)."""
    options = AttackOptions(attack=args.attack, measure=args.measure, budget=args.budget, gamma=args.gamma,
                            eps=args.eps, linf_cap=args.linf_cap, steps=args.steps, loss=args.loss)
    return options.build(model)


def _evaluate(args: argparse.Namespace, device: torch.device) -> int:
    spec = get_model_spec(args.model)
    if spec.labels != tuple(FASHION_MNIST_CLASSES):
        raise ValueError(f"evaluate needs a labelled test set for {args.model!r}; offline, only the "
                         "Fashion-MNIST models have one")
    model = load_model(args.model, device=device, weights=args.weights)
    data = load_fashion_mnist("test")
    x, y = (t[: args.n].to(device) for t in data.tensors())
    attack = _build_attack(args, model) if args.attack is not None else None
    if attack is None and any(v is not None for v in (args.budget, args.gamma, args.eps, args.linf_cap)):
        raise ValueError("--budget, --gamma, --eps and --linf-cap need --attack")
    report = evaluate(model, x, y, attack=attack, batch_size=args.batch_size, seed=args.seed).to_dict()
    report.update(model=args.model, data=f"Fashion-MNIST test ({data.source})")
    if args.json:
        print(json.dumps(report))
        return 0
    lines = [f"{args.model} on {report['n']} images of {report['data']}",
             f"  clean accuracy:  {report['clean_accuracy']:.4f}"]
    if attack is not None:
        lines.append(f"  robust accuracy: {report['robust_accuracy']:.4f} under {attack.name}"
                     f" (success {report['attack_success']:.4f})")
        lines.append("  mean measures: " + ", ".join(
            f"{MEASURES[k].label} {v:.4g}" for k, v in report["measures"].items()))
    print("\n".join(lines))
    return 0


def _attack_report(result: AttackResult, labels: Sequence[str], **extra: str) -> dict:
    pred_clean, pred_adv = int(result.pred_clean[0]), int(result.pred_adv[0])
    gamma = float(result.final_gamma[0])
    return {
        **extra,
        "attack": result.attack,
        "measure": result.measure,
        "success": bool(result.success[0]),
        "label": int(result.y[0]),
        "pred_clean": pred_clean,
        "pred_adv": pred_adv,
        "class_clean": labels[pred_clean],
        "class_adv": labels[pred_adv],
        "prob_clean": float(result.prob_clean[0, pred_clean]),
        "prob_adv": float(result.prob_adv[0, pred_adv]),
        "gamma": None if gamma != gamma else gamma,  # NaN (no multiplier) -> null
        "cost": float(result.cost[0]),
        "steps": result.steps,
        "measures": {name: float(v[0]) for name, v in result.measures.items()},
    }


def _format_attack(r: dict) -> str:
    lines = [
        f"{r['attack']} on {r['model']}: {'SUCCESS' if r['success'] else 'failed'}",
        f"  clean:    {r['class_clean']} ({r['prob_clean']:.3f})",
        f"  attacked: {r['class_adv']} ({r['prob_adv']:.3f})",
        f"  cost ({r['measure']}): {r['cost']:.5g}" + (f", gamma {r['gamma']:.4g}" if r["gamma"] is not None else ""),
        "  measures: " + ", ".join(f"{MEASURES[k].label} {v:.4g}" for k, v in r["measures"].items()),
        f"  wrote {r['out']}",
    ]
    return "\n".join(lines)


def _models(args: argparse.Namespace) -> int:
    rows = [
        {
            "name": s.name,
            "description": s.description,
            "input": f"{s.channels}x{s.input_size}x{s.input_size}",
            "classes": len(s.labels),
            "available_offline": s.available_offline(),
        }
        for s in MODELS.values()
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            flag = "offline" if r["available_offline"] else "needs weights"
            print(f"{r['name']:<24} {r['input']:<10} {r['classes']:>5} classes  {flag:<14} {r['description']}")
    return 0


def _measures(args: argparse.Namespace) -> int:
    rows = [
        {"name": m.name, "label": m.label, "cost": m.cost_formula, "min_size": m.min_size,
         "needs_rgb": m.needs_rgb, "higher_is_better": m.higher_is_better, "note": m.note}
        for m in MEASURES.values()
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            rgb = ", RGB only" if r["needs_rgb"] else ""
            note = f"  ({r['note']})" if r["note"] else ""
            print(f"{r['name']:<15} cost {r['cost']:<40} min {r['min_size']} px{rgb}{note}")
    return 0


def _train_bundled(args: argparse.Namespace, device: torch.device) -> int:
    from dataclasses import replace

    from core.training import TrainConfig
    from core.training.zoo import BUNDLED_DATASET, CONFIGS, train_bundled

    cfg = CONFIGS.get(args.model, TrainConfig(dataset=BUNDLED_DATASET))
    cfg = cfg if args.epochs is None else replace(cfg, epochs=args.epochs)
    card = train_bundled(args.model, cfg=cfg, device=device, progress=lambda m: print(m, flush=True))
    print(json.dumps(card, indent=2))
    return 0


def _train(args: argparse.Namespace, device_name: str | None) -> int:
    """``train``; under torchrun (WORLD_SIZE > 1) it joins the process group first (gloo on CPU, nccl on GPU)."""
    from core.data import GROUP_DATASETS, bundled_notice, load_group_dataset
    from core.training import train_model

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = default_device(device_name)
    started = False
    if world > 1:
        import torch.distributed as td

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not td.is_initialized():
            td.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            started = True
    out_dir = Path(args.out)
    created = not os.path.lexists(out_dir)
    try:
        if rank == 0:
            check_run_folder(out_dir, resume=args.resume, force=args.force)
        wdro = args.method in ("wdro", "wdro-naive")
        if not wdro and (args.budget is not None or args.gamma is not None):
            raise ValueError(f"--budget and --gamma are for wdro and wdro-naive, not {args.method}")
        budget = args.budget if args.budget is not None else (None if args.gamma is not None else TrainConfig.budget)
        cfg = TrainConfig(
            method=args.method, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            flip=not args.no_flip and GROUP_DATASETS.lookup(args.dataset).mirror_safe, seed=args.seed, width=args.width, measure=args.measure, budget=budget,
            gamma=args.gamma, budget_mode=args.budget_mode,
            **{option.field: getattr(args, option.field) for option in _method_options()},
        )
        options = _data_options(args.data_option)
        train = load_group_dataset(args.dataset, "train", root=args.root, seed=args.seed, **options)
        val = load_group_dataset(args.dataset, "val", root=args.root, seed=args.seed, **options)
        notice = bundled_notice(train, options)
        if rank == 0 and notice:
            print(notice, file=sys.stderr, flush=True)  # loud, even with --quiet
        if rank == 0 and not args.quiet:
            print(f"{args.method} on {args.dataset} ({len(train)} training images, source {train.source}, "
                  f"{world} process(es), {device})", flush=True)
            if not args.no_flip and not cfg.flip:
                print(f"no random flips: a mirror moves {args.dataset}'s cue to another class's place", flush=True)

        def report(p) -> None:
            if p.kind != "epoch" or rank != 0 or args.quiet:
                return
            row = p.metrics
            line = f"epoch {p.epoch}/{p.epochs}: loss {row['loss']:.4f}, train acc {row['train_acc']:.4f}"
            if "val" in row:
                by = ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in row["val"]["by_group"].items())
                line += f", val {by} (worst {row['val']['worst_group_accuracy']:.4f})"
            if "cost_mean" in row:
                line += f", cost {row['cost_mean']:.4g}"
            if "gamma" in row:
                line += f", gamma {row['gamma']:.4g}"
            print(line + f" [{row['seconds']:.1f} s]", flush=True)

        result = train_model(None, train, cfg=cfg, val=val, device=device, progress=report, out_dir=args.out,
                             resume=args.resume, half=args.half)
        if rank == 0:
            print(f"wrote {Path(args.out) / 'model.pt'} and {Path(args.out) / 'train.json'} "
                  f"({result.epochs_done} epochs, {result.seconds:.1f} s)", flush=True)
    except BaseException:
        if created and rank == 0:
            _remove_empty_folder(out_dir)  # a run that failed before its first write leaves no folder
        raise
    finally:
        if started:
            import torch.distributed as td

            td.destroy_process_group()
    return 0


RUN_FILES = ("model.pt", "train.json", "checkpoint.pt")
RUN_EXISTS = "refusing to replace the run in {path}: it holds {name} (pass --resume to continue it or --force to replace it)"
NOT_A_FOLDER = "refusing to write a run to {path}: it is {kind}, not a folder"


def check_run_folder(path: Path, *, resume: bool, force: bool) -> None:
    """Refuse a ``train --out`` that is not a folder, or that holds a run unless ``--resume`` or ``--force``."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        kind = "a symbolic link" if path.is_symlink() else "a file"
        raise WriteError(NOT_A_FOLDER.format(path=path, kind=kind))
    if resume or force:
        return
    for name in RUN_FILES:
        if os.path.lexists(path / name):
            raise WriteError(RUN_EXISTS.format(path=path, name=name))


def _remove_empty_folder(path: Path) -> None:
    try:
        path.rmdir()  # only when empty
    except OSError:
        pass


def _data_options(pairs: Sequence[str]) -> dict:
    """``["n_train=3000", "source=bundled"]`` -> ``{"n_train": 3000, "source": "bundled"}`` (ints and floats parsed)."""
    options: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--data-option: expected KEY=VALUE, got {pair!r}")
        parsed: object = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                continue
        options[key.strip()] = parsed
    return options


def _load_any_model(name: str, device: torch.device) -> torch.nn.Module:
    """A registry name, or a training output folder / model.pt / checkpoint.pt."""
    if name in MODELS:
        return load_model(name, device=device)
    if Path(name).exists():
        from core.training import load_trained

        return load_trained(name, device=device)[0]
    raise ValueError(f"--model: {name!r} is neither a registry model ({', '.join(MODELS)}) nor a file or folder")


def _fairness(args: argparse.Namespace, device: torch.device) -> int:
    from core.data import load_group_dataset
    from core.evaluation import evaluate_fairness

    data = load_group_dataset(args.dataset, args.split, root=args.root, seed=args.seed,
                              **_data_options(args.data_option))
    x, y, g = data.tensors(device)
    if args.n is not None:
        if args.n < 1:
            raise ValueError(f"--n: expected a positive number of images, got {args.n}")
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))[: args.n].sort().values
        x, y, g = x[keep.to(device)], y[keep.to(device)], g[keep.to(device)]
    if args.attack is None and any(v is not None for v in (args.budget, args.gamma, args.eps, args.linf_cap)):
        raise ValueError("--budget, --gamma, --eps and --linf-cap need --attack")
    rows = []
    for name in args.model:
        model = _load_any_model(name, device)
        attacks = {args.attack: _build_attack(args, model)} if args.attack is not None else None
        result = evaluate_fairness(model, x, y, g.cpu(), data.groups, attacks=attacks, bootstrap=args.bootstrap,
                                   seed=args.seed, batch_size=args.batch_size).to_dict()
        if args.attack is None:
            row = {"model": name, **_summary(result["clean"])}
        else:
            robust = result["under_attack"][args.attack]
            row = {"model": name, **_summary(robust["robust"]), "attack": robust["attack"],
                   "clean": _summary(robust["clean"]), "mean_cost": robust["mean_cost"]}
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    where = f"{args.dataset} {args.split} ({len(y)} images, source {data.source})"
    print(f"per-group accuracy on {where}" + (f" under {args.attack}" if args.attack else ""))
    names = list(data.groups)
    print(f"{'model':<40} " + " ".join(f"{n[:12]:>12}" for n in names) + f" {'mean':>7} {'worst':>7} {'gap':>7}")
    for r in rows:
        print(f"{r['model'][-40:]:<40} " + " ".join(f"{r['by_group'][n]['accuracy']:>12.4f}" for n in names)
              + f" {r['mean_accuracy']:>7.4f} {r['worst_group_accuracy']:>7.4f} {r['gap']:>7.4f}")
    return 0


def _summary(report: dict) -> dict:
    """The fields of a FairnessReport dict that the fairness command prints."""
    return {
        "mean_accuracy": report["mean_accuracy"],
        "worst_group_accuracy": report["worst_group_accuracy"],
        "worst_group": report["worst_group"],
        "gap": report["gap"],
        "by_group": report["by_group"],
        "ci": report.get("ci", {}),
    }


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
