"""Device payload codecs: the bytes a LoRaWAN device sends, as named values (and back).

Decoders are pure functions ``decode(f_port, payload) -> dict`` so the LoRaWAN adapter can
pick one by the codec name in the device registry; encoders let the simulator emit the
bytes a real device would.
"""
from __future__ import annotations

from typing import Any, Callable


class CodecError(ValueError):
    """The bytes do not fit the device's format (truncated, unknown channel or port)."""


# The codec modules import CodecError from here, so they are imported after it.
from etl.codecs import bosch_pls, em310_udl  # noqa: E402

Decoder = Callable[[int, bytes], dict[str, Any]]

CODECS: dict[str, Decoder] = {
    "em310_udl": em310_udl.decode,
    "bosch_pls": bosch_pls.decode,
}
