"""The folder layouts users already have, found and checked with one-line errors.

* ``domains``: ``ROOT/<domain>/*.jpg`` (AFHQ, CelebA-HQ), optionally under ``ROOT/train`` and ``ROOT/val``.
* ``unpaired``: ``ROOT/trainA``, ``ROOT/trainB`` (``testA``, ``testB``), masks in ``trainA_masks`` ... (CycleGAN/CUT).
* ``paired``: ``ROOT/[split/]A`` and ``ROOT/[split/]B`` matched by file stem, or side-by-side ``A|B`` images in
  ``ROOT/[split/]`` (pix2pix).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lit_gans.data.images import IMAGE_EXTENSIONS, describe_paths, find_unreadable, list_images
from lit_gans.errors import DataError

log = logging.getLogger(__name__)
EXTS = " ".join(IMAGE_EXTENSIONS)
VERIFY_DECODE_MAX = 5000  # verify="auto" decodes every file when there are at most this many


def existing_root(root: str | Path | None, layout_hint: str) -> Path:
    if root is None or str(root) in ("", "None", "???"):
        raise DataError(f"data.root is not set: pass data.root=DIR ({layout_hint})")
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise DataError(f"data.root {path} does not exist or is not a folder: point data.root to {layout_hint}")
    return path


def screen(paths: list[Path], verify: bool | str = "auto", strict: bool = False, workers: int = 4) -> list[Path]:
    """Drop unusable files (empty, not images, undecodable) with one warning that lists them, or raise
    with ``strict``. ``verify``: ``True`` decodes every file, ``"auto"`` does when there are at most
    5000, ``False`` only checks headers (undecodable files are then skipped when first read)."""
    if verify is False or verify == "false":
        decode = False
    else:
        decode = verify is True or verify == "true" or len(paths) <= VERIFY_DECODE_MAX
    bad = find_unreadable(paths, decode=decode, workers=workers)
    if not bad:
        return paths
    listing = "; ".join(f"{p} ({why})" for p, why in bad[:8]) + (f"; and {len(bad) - 8} more" if len(bad) > 8 else "")
    if strict:
        raise DataError(f"{len(bad)} unreadable image file(s): {listing}: remove or replace them, or set data.strict=false to skip them")
    log.warning("skipping %d unreadable image file(s): %s", len(bad), listing)
    badset = {p for p, _ in bad}
    return [p for p in paths if p not in badset]


# ---------------------------------------------------------------------------------------------- domains
@dataclass
class DomainFiles:
    """Files of a ``domains`` layout split: parallel lists of paths and domain indices."""

    folder: Path
    domain_names: list[str]
    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


DOMAINS_HINT = "a folder with one sub-folder of images per domain, e.g. data.root=data/afhq (afhq/train/cat/*.jpg)"


def domain_split_folder(root: Path, split: str) -> Path | None:
    """``ROOT/<split>`` when it exists; for ``train``, ``ROOT`` itself when there is no split folder."""
    if (root / split).is_dir():
        return root / split
    if split == "train" and not (root / "val").is_dir():
        return root
    return None


def find_domains(root: str | Path, split: str = "train", min_domains: int = 2, verify: bool | str = "auto",
                 strict: bool = False, domain_names: list[str] | None = None, workers: int = 4) -> DomainFiles:
    """List the images of each domain folder of a split; checks that there are ``min_domains`` non-empty ones.

    ``domain_names`` fixes the domains (and their order) from the training split for the validation split.
    """
    base_root = existing_root(root, DOMAINS_HINT)
    base = domain_split_folder(base_root, split)
    if base is None:
        raise DataError(f"{base_root} has no {split}/ folder: add {base_root}/{split}/<domain>/ or drop the split")
    names = domain_names or sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(f"{base} has no domain sub-folders: expected {base}/<domain>/<images> ({DOMAINS_HINT})")
    if len(names) < min_domains:
        raise DataError(
            f"{base} has {len(names)} domain folder ({', '.join(names)}); StarGAN v2 needs at least {min_domains} "
            "domains: add one sub-folder of images per domain"
        )
    out = DomainFiles(folder=base, domain_names=list(names))
    for label, name in enumerate(names):
        folder = base / name
        files = list_images(folder) if folder.is_dir() else []
        if not files:
            raise DataError(f"domain folder {folder} has no images ({EXTS}): add images to it or remove the folder")
        out.paths += files
        out.labels += [label] * len(files)
    keep = set(screen(out.paths, verify, strict, workers))
    pairs = [(p, y) for p, y in zip(out.paths, out.labels, strict=True) if p in keep]
    out.paths, out.labels = [p for p, _ in pairs], [y for _, y in pairs]
    for label, name in enumerate(names):
        if label not in out.labels:
            raise DataError(f"every image in domain folder {base / name} is unreadable: replace them")
    return out


# ---------------------------------------------------------------------------------------------- unpaired
@dataclass
class UnpairedFiles:
    folder_a: Path
    folder_b: Path
    paths_a: list[Path]
    paths_b: list[Path]
    masks_a: list[Path] | None = None
    masks_b: list[Path] | None = None


UNPAIRED_HINT = "a folder with trainA/ and trainB/ (and optionally testA/, testB/, trainA_masks/), e.g. data/horse2zebra"


def _masks_for(images: list[Path], mask_folder: Path) -> list[Path]:
    by_stem = {p.stem: p for p in list_images(mask_folder)}
    missing = [p.name for p in images if p.stem not in by_stem]
    if missing:
        raise DataError(
            f"{mask_folder} has no mask for {len(missing)} image(s) ({describe_paths(missing, 5)}): every image "
            "needs a PNG of class ids with the same file stem"
        )
    return [by_stem[p.stem] for p in images]


def find_unpaired(root: str | Path, split: str = "train", verify: bool | str = "auto", strict: bool = False,
                  workers: int = 4) -> UnpairedFiles:
    base = existing_root(root, UNPAIRED_HINT)
    folders = [base / f"{split}{side}" for side in ("A", "B")]
    for f in folders:
        if not f.is_dir():
            raise DataError(f"{f} does not exist: data=unpaired expects {UNPAIRED_HINT}")
    lists = []
    for f in folders:
        files = list_images(f)
        if not files:
            raise DataError(f"{f} has no images ({EXTS}): add images to it")
        files = screen(files, verify, strict, workers)
        if not files:
            raise DataError(f"every image in {f} is unreadable: replace them")
        lists.append(files)
    out = UnpairedFiles(folders[0], folders[1], lists[0], lists[1])
    for side, images in (("A", lists[0]), ("B", lists[1])):
        mask_folder = base / f"{split}{side}_masks"
        if mask_folder.is_dir():
            setattr(out, f"masks_{side.lower()}", _masks_for(images, mask_folder))
    return out


# ---------------------------------------------------------------------------------------------- paired
@dataclass
class PairedFiles:
    """Either two matched lists (``paths_b`` set) or side-by-side ``A|B`` images (``paths_b`` is None)."""

    folder: Path
    paths_a: list[Path]
    paths_b: list[Path] | None


PAIRED_HINT = "a folder with A/ and B/ (matched by file stem), or side-by-side A|B images (e.g. data/facades/train)"


def find_paired(root: str | Path, split: str = "train", verify: bool | str = "auto", strict: bool = False,
                workers: int = 4) -> PairedFiles:
    base_root = existing_root(root, PAIRED_HINT)
    base = base_root / split if (base_root / split).is_dir() else base_root
    if split != "train" and base == base_root:
        raise DataError(f"{base_root} has no {split}/ folder")
    a_dir, b_dir = base / "A", base / "B"
    if a_dir.is_dir() or b_dir.is_dir():
        for f in (a_dir, b_dir):
            if not f.is_dir():
                raise DataError(f"{f} does not exist: paired folders need both A/ and B/ ({PAIRED_HINT})")
        a_files, b_files = list_images(a_dir), list_images(b_dir)
        a_stems, b_stems = {p.stem: p for p in a_files}, {p.stem: p for p in b_files}
        only_a, only_b = sorted(set(a_stems) - set(b_stems)), sorted(set(b_stems) - set(a_stems))
        if only_a or only_b or not a_files:
            detail = []
            if only_a:
                detail.append(f"in A only: {describe_paths(only_a, 5)}")
            if only_b:
                detail.append(f"in B only: {describe_paths(only_b, 5)}")
            raise DataError(
                f"paired data: {len(a_files)} images in {a_dir} but {len(b_files)} in {b_dir} "
                f"({'; '.join(detail) or 'none'}): every A image needs a B image with the same file stem"
            )
        keep_a = set(screen(a_files, verify, strict, workers))
        keep_b = set(screen(b_files, verify, strict, workers))
        stems = [s for s in sorted(a_stems) if a_stems[s] in keep_a and b_stems[s] in keep_b]
        if not stems:
            raise DataError(f"no readable A/B pair in {base}")
        return PairedFiles(base, [a_stems[s] for s in stems], [b_stems[s] for s in stems])
    files = [p for p in list_images(base) if p.parent == base]
    if not files:
        raise DataError(f"{base} has no images and no A/ B/ folders: data=paired expects {PAIRED_HINT}")
    files = screen(files, verify, strict, workers)
    if not files:
        raise DataError(f"every image in {base} is unreadable: replace them")
    return PairedFiles(base, files, None)
