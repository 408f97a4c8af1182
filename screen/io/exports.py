"""Read 8- or 16-bit image exports (JPEG, PNG): micrographs saved for viewing or sharing.

Exports carry no pixel size (give it in the manifest's or labels CSV's ``pixel_size_A``) and their
grey levels are display values, often denoised, contrast-stretched or equalised; the assessment
networks that read grey-level ranks (``micassess_small_v3``, ``micassess_small_v5``) are the ones
measured on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from screen.errors import ImageReadError
from screen.io.images import MrcImage, check_image


def read_export(path: str | Path) -> MrcImage:
    """Read a JPEG or PNG image as float32 grey levels (dark = dense, as the file shows it).

    Colour images are converted to luminance (a grey-scale export saved as RGB has three equal
    channels); 16-bit grey PNGs keep their 16-bit values.

    Raises
    ------
    ImageReadError
        If the file is missing, not a readable image, or its pixels are empty or constant.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise ImageReadError(f"{path}: {image.n_frames} frames; expected one image")
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                data = np.asarray(image, dtype=np.float32)
            else:
                data = np.asarray(image.convert("L"), dtype=np.float32)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as err:  # truncated, corrupt, not an image
        raise ImageReadError(f"{path}: not a readable JPEG/PNG image ({err})") from err
    check_image(data, path)
    return MrcImage(data=data, pixel_size_A=None, path=path)
