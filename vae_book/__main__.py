"""Command line: train a model without the book, through the same :func:`vae_book.runs.train` the chapters use.

With no other flags, ``train --model M`` trains exactly the model a chapter trains for family M
(same settings, same data, same cache entry), so after the chapter has run it is a cache hit.

Example::

    python -m vae_book train --model transformer
    python -m vae_book train --model mlp --dataset mnist5k --likelihood gaussian --out runs/mlp
    python -m vae_book profiles
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _number(minimum: float, strict: bool):
    relation = ">" if strict else ">="

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be a finite number {relation} {minimum:g}, got {text!r}")
        return value

    return parse


def _build_parser() -> argparse.ArgumentParser:
    from vae_book.profiles import PROFILES
    from vae_book.runs import DATASETS, FAMILIES

    p = argparse.ArgumentParser(prog="python -m vae_book", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a VAE and save its parameters and history")
    t.add_argument("--model", choices=tuple(FAMILIES), default="mlp")
    t.add_argument("--dataset", default=None, choices=tuple(DATASETS),
                   help=f"one of {', '.join(DATASETS)}; default: the model's (mnist5k for mlp/autoencoder, "
                        f"the profile's images otherwise)")
    t.add_argument("--data-path", help="folder of images for --dataset image_folder (or set VAE_BOOK_DATA)")
    t.add_argument("--profile", choices=sorted(PROFILES),
                   help="default: from the backend / VAE_BOOK_PROFILE")
    t.add_argument("--steps", type=_positive_int, help="optimiser updates (default: the profile's)")
    t.add_argument("--batch-size", type=_positive_int, help="images per update (default: the profile's)")
    t.add_argument("--learning-rate", type=_number(0.0, strict=True), default=None,
                   help="Adam step size, > 0 (default: the profile's for the model)")
    t.add_argument("--beta", type=_number(0.0, strict=False), default=1.0, help="KL weight, >= 0 (1 = the ELBO)")
    t.add_argument("--likelihood", choices=("bernoulli", "gaussian"),
                   help="default: bernoulli for mlp, gaussian for conv/transformer")
    t.add_argument("--z-dim", type=_positive_int, help="latent dimensions (default: the model's)")
    t.add_argument("--seed", type=_integer, default=0)
    t.add_argument("--out", type=Path,
                   help="a cache folder to train into or load from (created if missing; default: the model cache)")
    sub.add_parser("profiles", help="print the run profiles")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: must be a folder, got {str(args.out)!r}, which is a file")
    import jax
    from flax import nnx

    from vae_book import runs
    from vae_book.profiles import PROFILES
    from vae_book.train import TrainingDiverged

    if args.command == "profiles":
        for name, prof in PROFILES.items():
            print(name, json.dumps(dataclasses.asdict(prof), default=str))
        return 0
    try:
        run = runs.train(
            args.model, args.dataset, data_path=args.data_path, profile=args.profile,
            steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, beta=args.beta,
            likelihood=args.likelihood, z_dim=args.z_dim, seed=args.seed,
            cache=args.out if args.out is not None else True,
        )
    except TrainingDiverged as e:  # a run that failed, not a bad command line: no traceback, exit 1
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    final = run.history.last("eval")
    print(json.dumps({"checkpoint": run.info.get("path"), "cached": run.info.get("cached"),
                      "params": int(sum(p.size for p in jax.tree.leaves(nnx.state(run.model, nnx.Param)))),
                      "seconds": round(run.history.seconds, 1),
                      "eval": {k: round(v, 4) for k, v in final.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
