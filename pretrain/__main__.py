"""``python -m pretrain --config FILE [key=value ...] [--resume]``: heatmap pre-training on synthetic scenes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from pretrain.job import load_pretrain_config, run_pretraining

    p = argparse.ArgumentParser(prog="python -m pretrain", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML with PretrainJobConfig fields (default: the dataclass defaults)")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir from its last checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=500 scenes.objects=[2,4]")
    args = p.parse_args(argv)
    try:
        cfg = load_pretrain_config(args.config, list(args.overrides))
        result = run_pretraining(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError) as e:
        print(f"pretrain: error: {e}", file=sys.stderr)
        return 2
    out = Path(cfg.train.out_dir)
    grounding = json.loads((out / "summary.json").read_text()).get("grounding")
    print(f"pre-trained {result.steps} steps in {result.seconds:.1f} s ({result.steps_per_second:.2f} steps/s); "
          f"final loss {result.final_loss:.4f}; policy saved to {out / 'policy'}")
    if grounding:
        error = (f"{grounding['median_error_px']:.2f} top-view pixels" if "median_error_px" in grounding
                 else f"{grounding['median_error']:.3f} cube units")
        print(f"grounding on {grounding['scenes']} held-out scenes ({grounding['views']} views): "
              f"{grounding['accuracy']:.1%} nearest the named object, median error {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
