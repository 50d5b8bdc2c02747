"""What was written where: each image's layers (what they hold, why) and, per output,
the image it replaced there, so `uvship inspect` can say what changed since the last build.
Every publisher records it, so a library caller's export has a history too."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import cache


def remember(digest: str, layer_info: Any, output: str) -> None:
    """Keep what each layer of image ``digest`` holds, and the image it replaced at
    ``output`` (a target as given: oci:DIR, a registry reference, ...)."""
    slot = hashlib.sha256(output.encode()).hexdigest()
    previous = (cache.read_record("outputs-history", slot) or {}).get("digest")
    key = digest.split(":", 1)[1]
    old = cache.read_record("images", key) or {}
    if previous == digest or previous is None:
        previous = old.get("previous")  # a rebuild, or another output of the same build
    cache.write_record("images", key, {"digest": digest, "output": output,
                                       "previous": previous, "layers": list(layer_info)})
    cache.write_record("outputs-history", slot, {"digest": digest})


def recorded(digest: str | None) -> dict[str, Any] | None:
    """What was remembered of image ``digest``, or None."""
    return cache.read_record("images", digest.split(":", 1)[1]) if digest else None
