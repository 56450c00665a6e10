"""Chinese pages are drawn in a CJK font: in the test browser, and by the CSS font stack.

``./install.sh --test`` installs ``fonts-wqy-microhei`` so headless Chromium
has one; without it the zh-CN screenshots show boxes. The browser test asks
Chromium (DevTools ``CSS.getPlatformFontsForNode``) which font it really
drew a heading with.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.test_web_support import add_targets, make_world, standard_rows
from web.server import serve

REPO = Path(__file__).resolve().parent.parent
CJK_FAMILIES = ("PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei")


def body_font_stack() -> list[str]:
    css = (REPO / "web" / "static" / "app.css").read_text(encoding="utf-8")
    body = re.search(r"\bbody\s*\{([^}]*)\}", css)
    assert body is not None
    stack = re.search(r"font-family:([^;]*);", body.group(1))
    assert stack is not None
    return [name.strip().strip('"') for name in stack.group(1).split(",")]


def test_the_font_stack_names_the_common_cjk_fonts_before_the_generic_one() -> None:
    stack = body_font_stack()
    assert stack[-1] == "sans-serif"
    assert set(CJK_FAMILIES) <= set(stack[:-1])


def test_install_test_installs_the_cjk_font() -> None:
    script = (REPO / "install.sh").read_text(encoding="utf-8")
    peers = script[script.index("install_test_peers() {") :]
    assert "missing+=(fonts-wqy-microhei)" in peers.split("\n}\n", 1)[0]


@pytest.mark.peer
def test_the_zh_cn_status_page_is_drawn_in_a_cjk_font(
    tmp_path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        chromium.get(f"{handle.url}/status?lang=zh-CN")
        chromium.execute_cdp_cmd("DOM.enable", {})
        chromium.execute_cdp_cmd("CSS.enable", {})
        root = chromium.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
        node = chromium.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": "h2"})
        fonts = chromium.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
        families = {f["familyName"]: f["glyphCount"] for f in fonts["fonts"]}
        text = chromium.execute_script("return document.querySelector('h2').innerText")
        cjk_glyphs = len(re.findall(r"[\u4e00-\u9fff]", text))
        assert cjk_glyphs > 0, text
        drawn = sum(n for name, n in families.items() if name in CJK_FAMILIES)
        assert drawn >= cjk_glyphs, (text, families)
    finally:
        handle.close()
