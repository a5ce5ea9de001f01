"""Known bytes the suites upload and expect back unchanged."""

from __future__ import annotations

# A valid 1x1 red RGB PNG, 69 bytes: a real image for apps that decode their input. (The lifecycle
# and contract suites had a copy with a stray byte after IDAT, which no decoder accepts.)
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
