"""The web console in a real browser (headless Chromium) against the real
gateway and the real moderation Triton: sign-in, moderation with the evidence
drawn, the operate view following the traffic file, and what a client token
cannot do. Screenshots of each view go to test-artifacts/console/."""

import hashlib
import http.client
import io
import re

import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator
from PIL import Image, ImageChops, ImageDraw, ImageFont
from playwright.sync_api import expect

from conftest import ROOT, fetch

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def sign_in(page, token):
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")


def threat_image(path):
    # A rendered threat with a margin around it, as in a screenshot (see test_ensemble.py).
    image = Image.new("RGB", (900, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.text((24, 60), "have a nice day", fill="black", font=ImageFont.truetype(FONT, 44))
    draw.text((24, 140), "you will die tomorrow", fill="black", font=ImageFont.truetype(FONT, 44))
    image.save(path)
    return path


def bucket(route, key):
    """The gateway's sticky bucket of a caller (TrafficRouter.swift: trafficBucket)."""
    digest = hashlib.sha256(route.encode() + b"\0" + key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def moderate(gateway, token, count=1):
    image = (ROOT / "Tests/Fixtures/images/gateway-sample.jpg").read_bytes()
    for _ in range(count):
        status, headers, body = fetch(gateway["url"] + "/v1/moderate", "POST", image,
                                      {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"})
        assert status == 200, body
    return headers["X-Moderation-Variant"]


def astronaut_image(path):
    # scikit-image's public-domain portrait: the detector finds a face (FACE_FEMALE), a box to draw.
    from skimage import data

    Image.fromarray(data.astronaut()).save(path, quality=90)
    return path


def card_for(page, name):
    return page.locator("#results .result").filter(has=page.locator("h3", has_text=name))


def drawn_fraction(card, corners):
    """Share of the canvas pixels inside the bounding box of `corners` (image pixels)
    that change when the evidence is drawn, and the canvas with the drawing."""
    canvas = card.locator("canvas")
    scale = float(canvas.get_attribute("data-scale"))
    toggle = card.locator("input.show-boxes")
    toggle.check()
    drawn = Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")
    toggle.uncheck()
    bare = Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")
    toggle.check()
    factor = drawn.width / canvas.evaluate("c => c.width")
    xs, ys = [x * scale * factor for x, _ in corners], [y * scale * factor for _, y in corners]
    diff = ImageChops.difference(drawn, bare).convert("L").point(lambda v: 255 if v > 24 else 0)
    region = diff.crop((round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))))
    return sum(region.histogram()[255:]) / max(1, region.width * region.height), drawn, diff


def wait_for_results(page, count):
    # Locators and expect() only: the console's policy forbids eval, which wait_for_function(str) uses.
    expect(page.locator("#results .result:not(.pending)")).to_have_count(count, timeout=120_000)


def test_the_served_openapi_document_is_valid_yaml_and_describes_the_console_api(gateway):
    status, headers, body = fetch(gateway["url"] + "/openapi.yaml")
    assert status == 200
    document = yaml.safe_load(body)
    # A valid OpenAPI 3.1 document, as client generators and API fuzzers read it.
    problems = [f"{' > '.join(map(str, e.path))}: {e.message}" for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert not problems, "\n".join(problems)
    paths = document["paths"]
    assert {"/admin/activity", "/console", "/console/{asset}", "/admin/traffic", "/admin/audit"} <= set(paths)
    assert paths["/admin/activity"]["get"]["x-permission"] == "admin"
    evidence = document["components"]["schemas"]["ModerationResult"]["properties"]["evidence"]["properties"]
    assert {"detections", "ocr_lines", "thresholds", "matches"} <= set(evidence)
    assert "fragments" in evidence["matches"]["items"]["properties"]


def test_console_files_are_public_with_a_strict_policy_and_validators(gateway):
    url = gateway["url"]
    status, headers, body = fetch(url + "/console/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["Cache-Control"] == "no-cache" and headers["X-Content-Type-Options"] == "nosniff"
    again = fetch(url + "/console/", headers={"If-None-Match": headers["ETag"]})
    assert again[0] == 304
    assert fetch(url + "/console/js/app.js")[1]["Content-Type"].startswith("text/javascript")
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    connection.request("GET", "/console")
    redirect = connection.getresponse()
    assert (redirect.status, redirect.getheader("Location")) == (308, "/console/")
    connection.close()
    assert fetch(url + "/console/nothing.js")[0] == 404
    for probe in ("/console/../config/gateway.yaml", "/console/%2e%2e/config/gateway.yaml", "/console/..%2fREADME.md"):
        assert fetch(url + probe)[0] in (400, 404), probe
    # No inline script or style anywhere in the bundle (the policy would block it).
    for page in (ROOT / "console").rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text) and "style=" not in text and "<style" not in text


def test_a_refused_token_shows_a_clear_message(page, artifacts):
    # With the keyboard alone: the field, then Tab to the button and Enter.
    page.focus("#token")
    page.keyboard.type("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bm90LWEtc2lnbmF0dXJl")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    message = page.locator("#signin-error")
    message.wait_for(state="visible")
    assert "refused this token" in message.inner_text()
    assert page.locator("#view-moderate").is_hidden()
    page.screenshot(path=str(artifacts / "signin-refused.png"))


def test_moderate_view_shows_decisions_boxes_and_the_matched_span(page, gateway, artifacts, tmp_path):
    sign_in(page, gateway["client"])
    page.locator("#view-moderate").wait_for(state="visible")
    assert page.locator("#tab-operate").is_hidden(), "a client token sees no operate view"
    # The token lives in the page's memory only.
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0 and page.evaluate("document.cookie") == ""
    # The picker is reachable from the keyboard (the input is hidden visually, not from focus).
    page.focus("#files")
    assert page.evaluate("document.activeElement.id") == "files"
    benign = ROOT / "Tests/Fixtures/images/gateway-sample.jpg"
    threat = threat_image(tmp_path / "threat.png")
    portrait = astronaut_image(tmp_path / "astronaut.jpg")
    page.set_input_files("#files", [str(benign), str(portrait), str(threat)])
    wait_for_results(page, 3)

    decisions = {name: card_for(page, name).get_attribute("data-decision") for name in ("gateway-sample.jpg", "astronaut.jpg", "threat.png")}
    assert decisions == {"gateway-sample.jpg": "allow", "astronaut.jpg": "allow", "threat.png": "block"}
    card = card_for(page, "threat.png")
    assert "ocr/threat" in card.locator(".reasons").inner_text()
    marked = card.locator(".ocr li.matched mark").all_inner_texts()
    assert any("die" in m.lower() for m in marked), marked
    assert card.locator(".bars [role=meter]").count() >= 2
    assert "Request id" in card.locator(".meta").inner_text()
    # The batch table filters by decision.
    page.select_option("#filter", "block")
    assert page.locator("#batch-rows tr:visible").count() == 1
    assert card_for(page, "gateway-sample.jpg").is_hidden()
    page.select_option("#filter", "all")

    # Pixels: with the evidence drawn, the matched fragment's box differs from the bare image...
    values = [float(v) for v in card.locator(".ocr li.matched").first.get_attribute("data-box").split(",")]
    changed, drawn, diff = drawn_fraction(card, list(zip(values[0::2], values[1::2])))
    assert changed > 0.2, f"the matched text's box is not drawn ({changed:.3f} of its pixels changed)"
    # ...and the bottom-right corner, with no text and no box, is untouched.
    corner = diff.crop((diff.width - 60, diff.height - 30, diff.width, diff.height))
    assert sum(corner.histogram()[255:]) == 0
    drawn.save(artifacts / "moderate-threat-canvas.png")
    # The detector's box over the portrait's face: its outline and label change the pixels along its edge.
    face = card_for(page, "astronaut.jpg")
    (x, y, w, h), = [[float(v) for v in b.split(",")] for b in face.locator(".detections li").evaluate_all("ls => ls.map(l => l.dataset.box)")]
    assert "FACE_FEMALE" in face.locator(".detections").inner_text()
    edge, drawn, _ = drawn_fraction(face, [(x - 2, y - 2), (x + w + 2, y + 4)])  # the top edge, 6 px high
    assert edge > 0.5, f"the detector's box is not drawn ({edge:.3f} of its top edge changed)"
    drawn.save(artifacts / "moderate-face-canvas.png")
    page.screenshot(path=str(artifacts / "moderate.png"), full_page=True)

    # The admin API refuses the client token when called directly too.
    status, _, body = fetch(gateway["url"] + "/admin/traffic", headers={"Authorization": f"Bearer {gateway['client']}"})
    assert status == 403, body
    in_page = page.evaluate("""async (token) => (await fetch('/admin/activity',
        {headers: {Authorization: 'Bearer ' + token}})).status""", gateway["client"])
    assert in_page == 403


def test_moderate_view_fits_a_phone(browser, gateway, artifacts):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(gateway["url"] + "/console/")
        sign_in(page, gateway["client"])
        page.set_input_files("#files", [str(ROOT / "Tests/Fixtures/images/gateway-sample.jpg")])
        wait_for_results(page, 1)
        assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=str(artifacts / "moderate-phone.png"), full_page=True)
    finally:
        context.close()


def test_operate_view_shows_the_traffic_file_and_follows_its_changes_without_a_reload(page, gateway, artifacts):
    traffic = gateway["traffic"]
    original = traffic.read_text()
    # Traffic for both variants, so the live panel and the canary (2-second windows
    # in this test's traffic file) have figures: the canary starts the candidate at
    # its first promotion step (1 of 100), the low end of its bucket range 9500..9999.
    candidate = next(s for s in (f"canary-{i}" for i in range(100_000)) if 9500 <= bucket("moderation", s) < 9600)
    assert moderate(gateway, gateway["token"]("client", candidate), 3) == "candidate"
    assert moderate(gateway, gateway["admin"], 3) == "baseline"
    sign_in(page, gateway["admin"])
    page.locator("#tab-operate").click()
    page.locator("#routes table.variants").wait_for()
    page.evaluate("window.__stillTheSamePage = true")
    row = lambda variant, cell: page.locator(f"#routes tr[data-variant={variant}] td.{cell}").inner_text()
    assert (row("baseline", "weight"), row("candidate", "weight")) == ("95", "5")
    revision = page.locator("#revision").inner_text()
    assert re.fullmatch(r"[0-9a-f]{12}", revision)
    assert "sequence" in page.locator("#audit").inner_text()
    expect(page.locator("#live [data-variant=candidate]")).to_contain_text("req/s", timeout=20_000)
    # A window the candidate's requests fell in is judged (pass, or fail on latency: either is evidence).
    expect(page.locator("#canary table.windows tbody")).to_contain_text(re.compile("pass|fail"), timeout=30_000)
    assert page.locator("#canary svg.chart").count() == 3
    page.screenshot(path=str(artifacts / "operate.png"), full_page=True)
    try:
        traffic.write_text(original.replace("weight: 95", "weight: 80").replace("weight: 5\n", "weight: 20\n"))
        expect(page.locator("#revision")).not_to_have_text(revision, timeout=30_000)
        expect(page.locator("#routes tr[data-variant=candidate] td.weight")).to_have_text("20", timeout=10_000)
        assert row("baseline", "weight") == "80"
        assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"
        page.screenshot(path=str(artifacts / "operate-after-change.png"), full_page=True)
    finally:
        traffic.write_text(original)
