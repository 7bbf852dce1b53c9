"""GET /: the try-it page, as HTML and in headless Chromium driven over the DevTools protocol (a real server, real HTTP):
forgeml serve's own app, its /v1/model, /v1/predict and /v1/generate."""

import json
import os
import re
import shutil
import subprocess
import time

import httpx
import pytest

from tests.serve.tiny_server import app_for, serving, trained

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install chromium "
                                                             "(make test and .ci/run do it)")


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    app = app_for(trained("shakespeare-gpt", tmp_path_factory.getbasetemp()))
    with serving(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    app = app_for(trained("clothing-mixed", tmp_path_factory.getbasetemp()))
    with serving(app) as url:
        yield app, url


def test_the_gpt_page_is_built_for_the_bundle_and_self_contained(gpt):
    _, url = gpt
    answer = httpx.get(url + "/", timeout=30)
    html = answer.text
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "<title>shakespeare-gpt — forgeml</title>" in html and "language_model" in html
    assert 'id="prompt"' in html and 'id="generate"' in html and "/v1/generate" in html and 'id="form"' not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from elsewhere: works offline
    assert "getReader" in html  # the stream is read as it comes, not awaited whole


def test_a_table_and_text_page_has_the_form_script_and_no_prompt_box(mixed):
    _, url = mixed
    html = httpx.get(url + "/", timeout=30).text
    assert "<title>clothing-mixed — forgeml</title>" in html and 'id="form"' in html and 'id="prompt"' not in html
    for name in ("Review Text", "Age", "Division Name"):
        assert f"<td>{name}</td>" in html  # the inputs, named before any script runs


class Browser:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, JSON messages ending in NUL):
    the DevTools protocol without a websocket client or a driver download."""

    def __init__(self, profile, flags=()):
        read_in, write_in = os.pipe()  # we write, Chromium reads on fd 3
        read_out, write_out = os.pipe()  # Chromium writes on fd 4, we read
        self.proc = subprocess.Popen(["bash", "-c", f'exec "$0" "$@" 3<&{read_in} 4>&{write_out}', CHROMIUM, *FLAGS, *flags,
                                      f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                                     pass_fds=(read_in, write_out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(read_in), os.close(write_out)
        self._w, self._r, self._buffer, self._id = write_in, read_out, b"", 0
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)

    def send(self, method, session=False, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": self.session} if session else {})}
        os.write(self._w, json.dumps(message).encode() + b"\0")
        while True:  # events in between are not needed: the page's state is read with Runtime.evaluate
            while b"\0" not in self._buffer:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def js(self, expression):
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=60.0):
        """Poll until the expression is truthy (a bound to fail by, not a timing the test asserts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"never true in {timeout} s: {expression}")

    def open(self, url):
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete'")

    def type_into(self, selector, text):
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", session=True, text=text)  # as a keyboard would: input events fire

    def close(self):
        try:
            self.send("Browser.close")
        except RuntimeError:
            pass
        self.proc.wait(timeout=30)
        os.close(self._w), os.close(self._r)


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


@needs_chromium
def test_in_chromium_the_gpt_page_streams_generated_text(gpt, browser):
    app, url = gpt
    browser.open(url + "/")
    browser.type_into("#prompt", "ROMEO:")
    browser.js("document.querySelector('#max-new-tokens').value = '300'; document.querySelector('#seed').value = '7'")
    browser.js("document.querySelector('#generate').click()")
    seen = []  # the output's length while generation runs: text appears piece by piece
    while browser.js("document.querySelector('#output').dataset.state") == "running":
        seen.append(browser.js("document.querySelector('#output').textContent.length"))
        time.sleep(0.02)
    assert browser.js("document.querySelector('#output').dataset.state") == "done"
    text = browser.js("document.querySelector('#output').textContent")
    assert text == app.state.predictor.generate("ROMEO:", 300, temperature=0.8, seed=7)  # the page sent its fields
    assert int(browser.js("document.querySelector('#output').dataset.events")) > 100  # one event per piece
    assert any(0 < n < len(text) for n in seen) or len(seen) < 2  # partial text was on screen (if polled in time)
    assert "pieces in" in browser.js("document.querySelector('#status').textContent")


@needs_chromium
def test_in_chromium_the_page_asks_for_the_key_when_the_server_wants_one(tmp_path_factory, browser):
    app = app_for(trained("shakespeare-gpt", tmp_path_factory.getbasetemp()), api_key="s3cret")
    with serving(app) as url:
        browser.open(url + "/")
        browser.type_into("#prompt", "A")
        browser.js("document.querySelector('#max-new-tokens').value = '20'; document.querySelector('#generate').click()")
        browser.wait_for("document.querySelector('#output').dataset.state === 'error'")
        assert browser.js("document.querySelector('#key').hidden") is False
        assert "API key" in browser.js("document.querySelector('#error').textContent")
        browser.type_into("#api-key", "s3cret")
        browser.js("document.querySelector('#use-key').click(); document.querySelector('#generate').click()")
        browser.wait_for("document.querySelector('#output').dataset.state === 'done'")
        assert len(browser.js("document.querySelector('#output').textContent")) > 0


@needs_chromium
def test_in_chromium_the_predict_form_shows_the_predicted_label_and_its_bars(mixed, browser):
    app, url = mixed
    browser.open(url + "/")
    browser.wait_for("document.querySelectorAll('#fields .field').length === 7")
    kinds = browser.js("Object.fromEntries([...document.querySelectorAll('#fields .field')].map(f => "
                       "[f.dataset.input, f.querySelector('input,select,textarea').tagName]))")
    assert kinds == {"Title": "TEXTAREA", "Review Text": "TEXTAREA", "Age": "INPUT", "Positive Feedback Count": "INPUT",
                     "Division Name": "SELECT", "Department Name": "SELECT", "Class Name": "SELECT"}
    divisions = browser.js("[...document.querySelector('.field[data-input=\"Division Name\"] select').options].map(o => o.value)")
    assert divisions[1:] == next(f.vocab for f in app.state.predictor.features.inputs if f.name == "Division Name")
    row = {"Title": "Love it", "Review Text": "Fits well, soft fabric, I wear it every week.", "Age": 34,
           "Positive Feedback Count": 2, "Division Name": divisions[1], "Department Name": None, "Class Name": None}
    browser.type_into(".field[data-input='Title'] textarea", row["Title"])
    browser.type_into(".field[data-input='Review Text'] textarea", row["Review Text"])
    browser.type_into(".field[data-input='Age'] input", "34")
    browser.type_into(".field[data-input='Positive Feedback Count'] input", "2")
    browser.js("for (const n of ['Department Name', 'Class Name']) document.querySelector(`.field[data-input='${n}'] select`).value = ''")
    browser.js("document.querySelector('#submit').click()")
    browser.wait_for("document.querySelector('#result').dataset.state === 'done'")
    [expected] = app.state.predictor.predict([row])
    assert browser.js("document.querySelector('#result .output .label').textContent") == expected["label"]
    shown = browser.js("Object.fromEntries([...document.querySelectorAll('#result .bar')].map(b => "
                       "[b.dataset.class, b.querySelector('.value').textContent]))")
    assert shown == {c: f"{100 * p:.1f}%" for c, p in expected["probabilities"].items()}


@needs_chromium
def test_in_chromium_a_server_error_is_shown_on_the_field_it_names(mixed, browser):
    _, url = mixed
    browser.open(url + "/")
    browser.wait_for("document.querySelectorAll('#fields .field').length === 7")
    # a field the model does not take (as a stale page would send): the server's error is shown on that field
    browser.js("document.querySelector('#fields').insertAdjacentHTML('beforeend', "
               "'<label class=\"field\" data-input=\"Height\" data-kind=\"numeric\"><input></label>')")
    browser.type_into(".field[data-input='Height'] input", "180")
    browser.js("document.querySelector('#submit').click()")
    browser.wait_for("document.querySelector('#result').dataset.state === 'error'")
    assert "Height" in browser.js("document.querySelector('#error').textContent")
    assert browser.js("document.querySelector('.field[data-input=\"Height\"]').classList.contains('bad')")


@needs_chromium
def test_in_chromium_explain_shows_bars_per_column_and_tokens_coloured_by_attribution(mixed, browser):
    pytest.importorskip("captum", reason="the explain extra is not installed: pip install 'forgeml[explain]'")
    app, url = mixed
    browser.open(url + "/")
    browser.wait_for("document.querySelectorAll('#fields .field').length === 7")
    row = {"Title": "Love it", "Review Text": "Fits well, soft fabric", "Age": 34, "Positive Feedback Count": 2,
           "Division Name": None, "Department Name": None, "Class Name": None}
    browser.type_into(".field[data-input='Title'] textarea", row["Title"])
    browser.type_into(".field[data-input='Review Text'] textarea", row["Review Text"])
    browser.type_into(".field[data-input='Age'] input", "34")
    browser.type_into(".field[data-input='Positive Feedback Count'] input", "2")
    browser.js("document.querySelector('#method').value = 'occlusion'")
    browser.js("document.querySelector('#explain').click()")
    browser.wait_for("document.querySelector('#explanation').dataset.state === 'done'")
    [expected] = app.state.predictor.explain([row], method="occlusion")
    assert browser.js("document.querySelector('#explanation .output .label').textContent") == expected["target"]
    tokens = browser.js("[...document.querySelectorAll('#explanation .tokens[data-input=\"Review Text\"] .token')]"
                        ".map(t => [t.textContent, Number(t.dataset.value)])")
    assert [t for t, _ in tokens] == [t for t, _ in expected["attributions"]["Review Text"]]
    for (_, shown), (_, want) in zip(tokens, expected["attributions"]["Review Text"]):
        assert shown == pytest.approx(want, abs=1e-5)
    bars = browser.js("Object.fromEntries([...document.querySelectorAll('#explanation .attr')].map(b => "
                      "[b.dataset.input, Number(b.dataset.value)]))")
    assert set(bars) == {"Age", "Positive Feedback Count", "Division Name", "Department Name", "Class Name"}
    assert bars["Age"] == pytest.approx(expected["attributions"]["Age"], abs=1e-5)
