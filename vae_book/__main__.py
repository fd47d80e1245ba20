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
import sys
from pathlib import Path


def _build_parser() -> argparse.ArgumentParser:
    from vae_book.runs import DATASETS, FAMILIES

    p = argparse.ArgumentParser(prog="python -m vae_book", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a VAE and save its parameters and history")
    t.add_argument("--model", choices=tuple(FAMILIES), default="mlp")
    t.add_argument("--dataset", default=None,
                   help=f"one of {', '.join(DATASETS)}; default: the model's (mnist5k for mlp/autoencoder, the profile's images otherwise)")
    t.add_argument("--data-path", help="folder of images for --dataset image_folder (or set VAE_BOOK_DATA)")
    t.add_argument("--profile", help="smoke, cpu or gpu (default: from the backend / VAE_BOOK_PROFILE)")
    t.add_argument("--steps", type=int, help="optimiser updates (default: the profile's)")
    t.add_argument("--batch-size", type=int, help="images per update (default: the profile's)")
    t.add_argument("--learning-rate", type=float, default=None,
                   help="Adam step size (default: the profile's for the model)")
    t.add_argument("--beta", type=float, default=1.0, help="KL weight (1 = the ELBO)")
    t.add_argument("--likelihood", choices=("bernoulli", "gaussian"),
                   help="default: bernoulli for mlp, gaussian for conv/transformer")
    t.add_argument("--z-dim", type=int, help="latent dimensions (default: the model's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, help="save the checkpoint here (default: the model cache)")
    sub.add_parser("profiles", help="print the run profiles")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    import jax
    from flax import nnx

    from vae_book import runs
    from vae_book.profiles import PROFILES

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
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    final = run.history.last("eval")
    print(json.dumps({"checkpoint": run.info.get("path"), "cached": run.info.get("cached"),
                      "params": int(sum(p.size for p in jax.tree.leaves(nnx.state(run.model, nnx.Param)))), "seconds": round(run.history.seconds, 1),
                      "eval": {k: round(v, 4) for k, v in final.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
