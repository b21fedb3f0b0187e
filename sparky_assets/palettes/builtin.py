"""Built-in named palettes.

Every palette here is the exact published colour list (Lospec's palette pages, in the
order they publish), cross-checked against independent copies; nothing is
approximated or "inspired by". Names are lowercase and hyphenated, and name lookup
elsewhere is case-insensitive.

Invariant: each palette's colours are distinct, opaque RGB, at most 256 of them.
"""

from __future__ import annotations

from .model import Palette


def _from_hex_list(name: str, hex_list: str) -> Palette:
    colors = tuple((int(token[0:2], 16), int(token[2:4], 16), int(token[4:6], 16)) for token in hex_list.split())
    if len(set(colors)) != len(colors):  # a typo here must not ship silently
        raise ValueError(f"built-in palette {name!r} has duplicate colours")
    return Palette(name, colors)


_PUBLISHED_HEX_LISTS: dict[str, str] = {
    # Lexaloffle PICO-8, the 16 colours of the fantasy console.
    "pico-8": """
        000000 1d2b53 7e2553 008751 ab5236 5f574f c2c3c7 fff1e8
        ff004d ffa300 ffec27 00e436 29adff 83769c ff77a8 ffccaa
    """,
    # GrafxKid, Sweetie 16 (also TIC-80's default palette).
    "sweetie-16": """
        1a1c2c 5d275d b13e53 ef7d57 ffcd75 a7f070 38b764 257179
        29366f 3b5dc9 41a6f6 73eff7 f4f4f4 94b0c2 566c86 333c57
    """,
    # ENDESGA 32.
    "endesga-32": """
        be4a2f d77643 ead4aa e4a672 b86f50 733e39 3e2731 a22633
        e43b44 f77622 feae34 fee761 63c74d 3e8948 265c42 193c3e
        124e89 0099db 2ce8f5 ffffff c0cbdc 8b9bb4 5a6988 3a4466
        262b44 181425 ff0044 68386c b55088 f6757a e8b796 c28569
    """,
    # ENDESGA 64.
    "endesga-64": """
        ff0040 131313 1b1b1b 272727 3d3d3d 5d5d5d 858585 b4b4b4
        ffffff c7cfdd 92a1b9 657392 424c6e 2a2f4e 1a1932 0e071b
        1c121c 391f21 5d2c28 8a4836 bf6f4a e69c69 f6ca9f f9e6cf
        edab50 e07438 c64524 8e251d ff5000 ed7614 ffa214 ffc825
        ffeb57 d3fc7e 99e65f 5ac54f 33984b 1e6f50 134c4c 0c2e44
        00396d 0069aa 0098dc 00cdf9 0cf1ff 94fdff fdd2ed f389f5
        db3ffd 7a09fa 3003d9 0c0293 03193f 3b1443 622461 93388f
        ca52c9 c85086 f68187 f5555d ea323c c42430 891e2b 571c27
    """,
    # DawnBringer's 16 colour palette (DB16).
    "dawnbringer-16": """
        140c1c 442434 30346d 4e4a4e 854c30 346524 d04648 757161
        597dce d27d2c 8595a1 6daa2c d2aa99 6dc2ca dad45e deeed6
    """,
    # DawnBringer's 32 colour palette (DB32).
    "dawnbringer-32": """
        000000 222034 45283c 663931 8f563b df7126 d9a066 eec39a
        fbf236 99e550 6abe30 37946e 4b692f 524b24 323c39 3f3f74
        306082 5b6ee1 639bff 5fcde4 cbdbfc ffffff 9badb7 847e87
        696a6a 595652 76428a ac3232 d95763 d77bba 8f974a 8a6f30
    """,
    # Adigun A. Polack, AAP-64.
    "aap-64": """
        060608 141013 3b1725 73172d b4202a df3e23 fa6a0a f9a31b
        ffd541 fffc40 d6f264 9cdb43 59c135 14a02e 1a7a3e 24523b
        122020 143464 285cc4 249fde 20d6c7 a6fcdb ffffff fef3c0
        fad6b8 f5a097 e86a73 bc4a9b 793a80 403353 242234 221c1a
        322b28 71413b bb7547 dba463 f4d29c dae0ea b3b9d1 8b93af
        6d758d 4a5462 333941 422433 5b3138 8e5252 ba756a e9b5a3
        e3e6ff b9bffb 849be4 588dbe 477d85 23674e 328464 5daf8d
        92dcba cdf7e2 e4d2aa c7b08b a08662 796755 5a4e44 423934
    """,
    # Kerrie Lake, Resurrect 64.
    "resurrect-64": """
        2e222f 3e3546 625565 966c6c ab947a 694f62 7f708a 9babb2
        c7dcd0 ffffff 6e2727 b33831 ea4f36 f57d4a ae2334 e83b3b
        fb6b1d f79617 f9c22b 7a3045 9e4539 cd683d e6904e fbb954
        4c3e24 676633 a2a947 d5e04b fbff86 165a4c 239063 1ebc73
        91db69 cddf6c 313638 374e4a 547e64 92a984 b2ba90 0b5e65
        0b8a8f 0eaf9b 30e1b9 8ff8e2 323353 484a77 4d65b4 4d9be6
        8fd3ff 45293f 6b3e75 905ea9 a884f3 eaaded 753c54 a24b6f
        cf657f ed8099 831c5d c32454 f04f78 f68181 fca790 fdcbb0
    """,
    # Arne Niklas Jansson, ARNE 16.
    "arne-16": """
        000000 493c2b be2633 e06f8b 9d9d9d a46422 eb8931 f7e26b
        ffffff 1b2632 2f484e 44891a a3ce27 005784 31a2f2 b2dcef
    """,
    # Luis Miguel Maldonado, SLSO8.
    "slso8": "0d2b45 203c56 544e68 8d697a d08159 ffaa5e ffd4a3 ffecd6",
    # Original Game Boy (DMG-01) four greens, darkest first.
    "gameboy": "0f380f 306230 8bac0f 9bbc0f",
    # Pure black and white.
    "1bit": "000000 ffffff",
}

BUILTIN_PALETTES: dict[str, Palette] = {
    name: _from_hex_list(name, hex_list) for name, hex_list in _PUBLISHED_HEX_LISTS.items()
}
"""Built-in palettes by lowercase hyphenated name. Treat as read-only."""
