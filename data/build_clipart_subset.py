"""Build `data/clipart_subset.npz` from Debian's openclipart-png clip art.

Usage:
    python data/build_clipart_subset.py [--source DIR] [--out FILE] [--check]

The drawings are read from `--source`, by default
`/usr/share/openclipart/png/` (Debian package `openclipart-png`, public
domain). Each class is every PNG found recursively under one folder. Each
drawing is composited on white, its white margin cropped, its longest side
fitted into `IMAGE_SIZE - 8` pixels and centred on a white square of
`IMAGE_SIZE` pixels. A drawing is kept once when several files render to the
same image (copies, symlinks, re-encodings), and dropped when it is filed
under two classes. Near-duplicates (the same file name up to a trailing
number or `_bw`, or grey 24x24 thumbnails correlated above 0.95) form a
group, and a seeded choice of whole groups, about 40% of each class's, is
the test split, so no near-duplicate is on both sides.

Everything is deterministic (sorted file lists, exact integer correlations,
a fixed seed, an archive with fixed timestamps), so a rebuild with the same
Pillow version is byte-identical; `--check` rebuilds in memory and compares
with the committed file.
"""

import argparse
import hashlib
import io
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

# (class name, folder under the source) in label order.
CLASSES = (
    ("mammals", "animals/mammals"),
    ("birds", "animals/birds"),
    ("fruit", "food/fruit"),
    ("vehicles", "transportation/vehicles"),
    ("hardware", "computer/hardware"),
)
# Files of the package that render a placeholder instead of a drawing.
BROKEN = {
    "animals/birds/duck_yellow_ii_kurt_cagl_.png": "Inkscape's 'Linked Image Not Found' placeholder",
    "animals/birds/penguin/tux_didier_fabert_01.png": "Inkscape's 'Linked Image Not Found' placeholder",
}
IMAGE_SIZE = 128
PADDING = 8
# A drawing larger than this is reduced before its margin is cropped; the
# largest ones (two fruit at 10,500 x 16,000) would otherwise be composited
# at 168 megapixels.
WORKING_SIDE = 2048
# Channel difference from white below which a pixel counts as margin.
WHITE_TOLERANCE = 8
THUMBNAIL_SIDE = 24
# Pearson correlation above 0.95 (compared as num^2 / den > 361 / 400).
CORRELATION_NUMERATOR, CORRELATION_DENOMINATOR = 361, 400
TEST_FRACTION = 0.4
SPLIT_SEED = 2026
DEFAULT_SOURCE = Path("/usr/share/openclipart/png")
DEFAULT_OUT = Path(__file__).resolve().parent / "clipart_subset.npz"

# The largest drawings exceed PIL's decompression-bomb limit (89 megapixels);
# they are trusted files of a Debian package.
Image.MAX_IMAGE_PIXELS = 400_000_000


def find_source(source=None):
    """Return the source folder if it holds every class folder."""
    folder = Path(source) if source else DEFAULT_SOURCE
    missing = [sub for _, sub in CLASSES if not (folder / sub).is_dir()]
    if missing:
        sys.exit(
            f"openclipart PNGs not found: {folder} lacks {', '.join(missing)}. Install Debian's "
            "`openclipart-png` package (`apt-get install openclipart-png`) or pass --source DIR."
        )
    return folder


def list_files(folder):
    """`(label, path relative to folder)` of every PNG of every class, sorted within a class."""
    files = []
    for label, (_, sub) in enumerate(CLASSES):
        found = sorted(path.relative_to(folder).as_posix() for path in (folder / sub).rglob("*.png"))
        files.extend((label, path) for path in found if path not in BROKEN)
    return files


def render(path):
    """Return the drawing at `path` as a uint8 RGB array `(IMAGE_SIZE, IMAGE_SIZE, 3)` on white."""
    with Image.open(path) as image:
        drawing = image.convert("RGBA")
    # RGBA resizing premultiplies alpha, so reducing before compositing is safe.
    drawing.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    white = Image.new("RGBA", drawing.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, drawing).convert("RGB")
    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, (255, 255, 255)))
    box = difference.convert("L").point(lambda v: 255 if v > WHITE_TOLERANCE else 0).getbbox()
    if box:
        rgb = rgb.crop(box)
    scale = (IMAGE_SIZE - PADDING) / max(rgb.size)
    width, height = (max(1, round(side * scale)) for side in rgb.size)
    rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    canvas.paste(rgb, ((IMAGE_SIZE - width) // 2, (IMAGE_SIZE - height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def deduplicate(labels, paths, images):
    """Indices to keep: the first of every identical image, none of one filed under two classes."""
    classes_of, first = {}, {}
    for index, (label, image) in enumerate(zip(labels, images)):
        key = hashlib.sha256(image.tobytes()).digest()
        classes_of.setdefault(key, set()).add(label)
        first.setdefault(key, index)
    keep = [index for key, index in first.items() if len(classes_of[key]) == 1]
    dropped = {
        "identical": len(labels) - len(first),
        "in two classes": [paths[index] for key, index in first.items() if len(classes_of[key]) > 1],
    }
    return sorted(keep), dropped


def stem_key(path):
    """The file name without `.png` and without trailing numbers, `_bw` and separators."""
    stem = Path(path).stem.lower()
    key = re.sub(r"(?:[-_. ]+bw|[-_. ]*\d+)*[-_. ]*$", "", stem)
    return key or stem


def correlated_pairs(images):
    """Pairs `(i, j)`, i < j, whose grey thumbnails correlate above 0.95, in integer arithmetic."""
    side = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    grey = np.stack([
        np.asarray(Image.fromarray(image).convert("L").resize(side, Image.Resampling.BOX)).ravel()
        for image in images
    ]).astype(np.int64)
    # Exact integer sums make the decision independent of BLAS and of the CPU.
    n = grey.shape[1]
    sums = grey.sum(axis=1)
    numerator = n * (grey @ grey.T) - np.outer(sums, sums)
    spread = n * (grey * grey).sum(axis=1) - sums * sums
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(numerator > 0, k=1))):
        num, den = int(numerator[i, j]), int(spread[i]) * int(spread[j])
        if CORRELATION_DENOMINATOR * num * num > CORRELATION_NUMERATOR * den:
            pairs.append((int(i), int(j)))
    return pairs


def group_ids(labels, paths, images):
    """Near-duplicate group of every image, numbered in order of first member (union-find).

    File names are compared within a class (a "mouse" may be an animal or a
    device); thumbnails across classes.
    """
    parent = list(range(len(paths)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)

    first_with_key = {}
    for index, (label, path) in enumerate(zip(labels, paths)):
        union(first_with_key.setdefault((int(label), stem_key(path)), index), index)
    for i, j in correlated_pairs(images):
        union(i, j)
    numbers = {}
    return np.array([numbers.setdefault(root(i), len(numbers)) for i in range(len(paths))], dtype=np.int32)


def single_class_groups(labels, groups):
    """Indices of the images whose group lies within one class (a drawing and its near-duplicate
    filed under two classes have no right label)."""
    mixed = [group for group in np.unique(groups) if np.unique(labels[groups == group]).size > 1]
    return np.flatnonzero(~np.isin(groups, mixed))


def split(labels, groups):
    """Test flags: per class, a seeded `TEST_FRACTION` of its groups, whole groups only."""
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in range(len(CLASSES)):
        members = labels == label
        class_groups = np.unique(groups[members])
        chosen = rng.permutation(class_groups)[: round(TEST_FRACTION * len(class_groups))]
        is_test |= members & np.isin(groups, chosen)
    return is_test


def write_archive(arrays):
    """Return the bytes of an npz of `arrays`, compressed, with fixed member timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def build(folder):
    """Return `(archive bytes, summary lines)` built from the drawings in `folder`."""
    files = list_files(folder)
    labels = np.array([label for label, _ in files], dtype=np.uint8)
    paths = [path for _, path in files]
    images = [render(folder / path) for path in paths]
    keep, dropped = deduplicate(labels, paths, images)
    labels, paths = labels[keep], [paths[index] for index in keep]
    images = np.stack([images[index] for index in keep])
    groups = group_ids(labels, paths, images)
    single = single_class_groups(labels, groups)
    mixed = sorted(set(paths) - {paths[index] for index in single})
    # np.unique renumbers the remaining groups 0.. in the same order.
    labels, paths, images = labels[single], [paths[index] for index in single], images[single]
    groups = np.unique(groups[single], return_inverse=True)[1].astype(np.int32)
    is_test = split(labels, groups)
    arrays = {
        "images": images,
        "labels": labels,
        "groups": groups,
        "is_test": is_test,
        "class_names": np.array([name for name, _ in CLASSES]),
        "paths": np.array(paths),
    }
    lines = [f"{len(files)} files, {dropped['identical']} identical images dropped, "
             f"{len(BROKEN)} placeholders skipped, dropped as filed under two classes: "
             f"{', '.join(dropped['in two classes']) or 'none'}; near-duplicates in two classes "
             f"dropped: {', '.join(mixed) or 'none'}"]
    for label, (name, sub) in enumerate(CLASSES):
        members = labels == label
        lines.append(f"{name:>9} ({sub}): {members.sum():3d} images in {np.unique(groups[members]).size:3d} "
                     f"groups, pool {(members & ~is_test).sum():3d}, test {(members & is_test).sum():3d}")
    return write_archive(arrays), lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help=f"openclipart PNG folder (default: {DEFAULT_SOURCE})")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="archive to write")
    parser.add_argument("--check", action="store_true", help="compare a rebuild with --out")
    args = parser.parse_args(argv)
    folder = find_source(args.source)
    payload, lines = build(folder)
    out = Path(args.out)
    digest = hashlib.sha256(payload).hexdigest()
    print("\n".join(lines))
    if args.check:
        same = out.is_file() and out.read_bytes() == payload
        print(f"rebuild sha256 {digest}: {'identical to' if same else 'DIFFERS from'} {out}")
        return 0 if same else 1
    out.write_bytes(payload)
    print(f"wrote {out} ({len(payload):,} bytes, sha256 {digest}) from {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
