"""Copy the course's sample photos out of scikit-image and write data/manifest.json.

Run once by a maintainer (``pip install scikit-image`` or ``pip install -e .[data]``, then
``python data/make_samples.py``); the files and the manifest are committed, and
``tests/test_data.py`` checks that they still agree. The photos ship inside the scikit-image
package, so nothing is downloaded; the course itself does not need scikit-image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import skimage
from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCE = Path(skimage.__file__).resolve().parent / "data"

# name -> (file in skimage/data, what it shows, licence as stated by scikit-image)
SAMPLES = {
    "astronaut": ("astronaut.png", "Astronaut Eileen Collins, portrait in uniform",
                  "Public domain (NASA Great Images database)"),
    "chelsea": ("chelsea.png", "Chelsea the cat, close-up",
                "CC0 1.0, by the photographer Stefan van der Walt"),
    "coffee": ("coffee.png", "A cup of espresso on a red saucer with a spoon, on a wooden table",
               "CC0 1.0, by the photographer Rachel Michetti"),
    "rocket": ("rocket.jpg", "A SpaceX Falcon 9 rocket on its launch pad at dusk",
               "Public domain (released by SpaceX)"),
    "motorcycle": ("motorcycle_left.png",
                   "A red motorcycle in a storeroom (left view of a stereo pair)",
                   "Middlebury Stereo Datasets 2014 (Scharstein et al., GCPR 2014), as "
                   "redistributed with scikit-image; cite the dataset when you reuse it"),
}


def main() -> None:
    records = []
    for name, (filename, what, licence) in SAMPLES.items():
        src = SOURCE / filename
        dest = HERE / f"{name}{src.suffix}"
        shutil.copyfile(src, dest)
        with Image.open(dest) as img:
            width, height = img.size
        records.append({
            "name": name,
            "file": dest.name,
            "description": what,
            "source": f"scikit-image {skimage.__version__}, skimage/data/{filename}",
            "licence": licence,
            "width": width,
            "height": height,
            "bytes": dest.stat().st_size,
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
        })
    manifest = {"images": records}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(records)} samples and manifest.json")


if __name__ == "__main__":
    main()
