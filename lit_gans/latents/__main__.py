"""``python -m lit_gans.latents``: images to SD-VAE latents and back.

    encode --images DIR --vae PATH_OR_HUB_ID [--subfolder vae] [--size 256] --out FILE
           [--sample] [--batch-size 16] [--dtype fp32|fp16|bf16] [--device auto] [--layout auto]
    decode --latents FILE --vae PATH_OR_HUB_ID [--subfolder vae] --out DIR [--limit N]
    info FILE
"""

from __future__ import annotations

import argparse
import sys

from lit_gans.cli import user_errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_gans.latents", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="encode a domains/unpaired/paired image folder to a latent file")
    enc.add_argument("--images", required=True, help="image root (domains, unpaired or paired layout)")
    enc.add_argument("--vae", required=True, help="diffusers AutoencoderKL folder or hub id (from the local cache)")
    enc.add_argument("--download", action="store_true", help="let a hub id --vae be downloaded when not cached")
    enc.add_argument("--subfolder", default=None, help="sub-folder of the VAE inside --vae (e.g. vae for a pipeline)")
    enc.add_argument("--size", type=int, default=256, help="images are resized (shorter side) and centre-cropped to this")
    enc.add_argument("--out", required=True, help="latent file to write")
    enc.add_argument("--sample", action="store_true", help="sample the posterior instead of taking its mean")
    enc.add_argument("--seed", type=int, default=0, help="seed of --sample")
    enc.add_argument("--batch-size", type=int, default=16)
    enc.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="VAE compute dtype")
    enc.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1 ...")
    enc.add_argument("--layout", choices=("auto", "domains", "unpaired", "paired"), default="auto")
    enc.add_argument("--workers", default="auto", help="image decoding processes")
    enc.add_argument("--shard-size", type=int, default=512, help="images per resumable shard")
    enc.add_argument("--store-dtype", choices=("fp16", "fp32"), default="fp32", help="dtype of the stored latents")

    dec = sub.add_parser("decode", help="decode a latent file to PNG images")
    dec.add_argument("--latents", required=True)
    dec.add_argument("--vae", required=True)
    dec.add_argument("--download", action="store_true", help="let a hub id --vae be downloaded when not cached")
    dec.add_argument("--subfolder", default=None)
    dec.add_argument("--out", required=True, help="folder for the PNGs")
    dec.add_argument("--limit", type=int, default=None, help="decode only the first N latents")
    dec.add_argument("--batch-size", type=int, default=16)
    dec.add_argument("--device", default="auto")

    info = sub.add_parser("info", help="describe a latent file")
    info.add_argument("file")

    args = parser.parse_args(argv)
    with user_errors():
        from lit_gans.latents import cli_impl

        if args.command == "encode":
            cli_impl.encode(args)
        elif args.command == "decode":
            cli_impl.decode(args)
        else:
            return cli_impl.info(args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
