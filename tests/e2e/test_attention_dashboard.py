"""The README's TensorBoard command in headless Chromium: every tab, and the Attention tab's views.

One TensorBoard process serves, for the whole module, the logs of the tiny model trained by the
session fixture (scalars, translations, positional-encoding image, attention written by the
training callback) plus a `tft-inspect` run of the tiny export (attention and heatmap images),
with the `--samples_per_plugin` flags of the README's command and `TFT_ATTENTION_EXPORT`
pointing at the export. Chromium is Debian's `chromium` + `chromium-driver` (`.ci/run`
installs them); without them these tests skip, except under CI (`CI=true`), where they fail.
Screenshots are saved in each test's `tmp_path`; their paths are printed.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from serving import inspect

pytestmark = pytest.mark.e2e

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1500,1000",
)
TIMEOUT = 60
WORD_START = "\u2581"
INSPECTED_SENTENCE = "Where is the train station?"
# Typed into the box: in no logdir, so only the export can answer it.
TYPED_SENTENCE = "My sister reads a long book every night."

# Searches through shadow roots: TensorBoard's Polymer dashboards keep their content there.
DEEP_QUERY = """
const [hostSelector, selector] = arguments;
function deepAll(root, selector, found) {
  for (const node of root.querySelectorAll('*')) {
    if (node.matches(selector)) found.push(node);
    if (node.shadowRoot) deepAll(node.shadowRoot, selector, found);
  }
  return found;
}
const hosts = deepAll(document, hostSelector, []);
return hosts.length ? deepAll(hosts[0].shadowRoot || hosts[0], selector, []) : [];
"""
DEEP_TEXT = """
function deepText(node) {
  let text = node.nodeType === Node.TEXT_NODE ? node.textContent : '';
  if (node.shadowRoot) text += deepText(node.shadowRoot);
  for (const child of node.childNodes) text += deepText(child);
  return text;
}
return deepText(document.body);
"""


def readme_samples_per_plugin():
    """The `--samples_per_plugin` value of the README's TensorBoard command for the demo."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        readme = file.read()
    match = re.search(r"^tensorboard --logdir runs/demo/model/logs(?:.*\\\n)*.*$", readme, re.M)
    assert match, "README.md has no `tensorboard --logdir runs/demo/model/logs ...` command"
    args = shlex.split(match.group(0).replace("\\\n", " "))
    assert "--samples_per_plugin" in args, f"The README's command lacks it: {args}"
    return args[args.index("--samples_per_plugin") + 1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url, route, **query):
    address = f"{url}/data/plugin/{route}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(address, timeout=TIMEOUT) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served(trained_model_dir, exported_translator, tmp_path_factory):
    """(url, export_dir): TensorBoard on the tiny model's logs + a tft-inspect run."""
    export_dir = os.path.dirname(exported_translator[0])  # The base folder of versions.
    logdir = tmp_path_factory.mktemp("e2e") / "logs"
    shutil.copytree(os.path.join(trained_model_dir, "logs"), logdir)
    inspect.inspect(export_dir, str(logdir / "inspect"), [INSPECTED_SENTENCE], images=True)

    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    log = open(logdir.parent / "tensorboard.log", "w+")
    # Outside the source tree, so the installed entry points are what loads the plugin.
    process = subprocess.Popen(
        [tensorboard, "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1",
         "--samples_per_plugin", readme_samples_per_plugin()],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(logdir.parent),
        env={**os.environ, "TFT_ATTENTION_EXPORT": export_dir},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                if {"attention", "inspect"} <= set(get_json(url, "attention/runs")):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"TensorBoard did not serve the attention runs:\n{log.read()}")
            time.sleep(0.5)
        yield url, export_dir
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    problem = None
    if webdriver is None:
        problem = "selenium is missing: pip install -e '.[test]'"
    elif missing:
        problem = f"{missing} missing: apt-get install chromium chromium-driver (.ci/run does)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"The browser tests must run in CI: {problem}")
        pytest.skip(problem)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield browser
    browser.quit()


@pytest.fixture
def screenshot(driver, tmp_path, capsys):
    """Saves the whole page as `tmp_path/NAME.png`, prints the path, returns into the iframe."""
    def save(name):
        driver.switch_to.default_content()
        path = str(tmp_path / f"{name}.png")
        driver.save_screenshot(path)
        with capsys.disabled():
            print(f"\nscreenshot: {path}")
        frames = driver.find_elements(By.TAG_NAME, "iframe")
        if frames:
            driver.switch_to.frame(frames[0])
        return path
    return save


def redraw_wait(driver):
    """A wait that retries while the page redraws.

    TensorBoard and the Attention tab redraw their elements while data arrive: an element
    found a moment ago may be replaced (stale) or not drawn yet before it is read.
    """
    return WebDriverWait(driver, TIMEOUT, ignored_exceptions=(
        StaleElementReferenceException, NoSuchElementException))


def open_tab(driver, url, tab):
    driver.get("about:blank")  # A fresh page: tabs opened before leave their elements behind.
    driver.get(f"{url}/#{tab}")
    return redraw_wait(driver)


def open_attention(driver, url):
    """Opens the Attention tab and switches into its iframe once the model view is drawn."""
    wait = open_tab(driver, url, "attention")
    wait.until(expected_conditions.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model-view canvas.thumb"))
    return wait


def heatmap_weights(driver):
    """{(q, k): weight} of the one heatmap shown (read in one script: no stale elements)."""
    cells = driver.execute_script(
        "const figures = document.querySelectorAll('figure.matrix');"
        "if (figures.length !== 1) return null;"
        "return [...figures[0].querySelectorAll('rect.cell')].map((cell) => "
        "[Number(cell.dataset.q), Number(cell.dataset.k), Number(cell.dataset.weight)]);")
    assert cells is not None, "expected exactly one heatmap"
    return {(q, k): weight for q, k, weight in cells}


def texts(driver, selector, attribute=None):
    """Text (or an attribute) of every element matching `selector`, read in one script."""
    return driver.execute_script(
        "const [selector, attribute] = arguments;"
        "return [...document.querySelectorAll(selector)].map((node) => "
        "attribute ? node.getAttribute(attribute) : node.textContent);", selector, attribute)


def assert_heatmap_is(driver, matrix):
    shown = heatmap_weights(driver)
    assert len(shown) == len(matrix) * len(matrix[0])
    for (q, k), weight in shown.items():
        assert weight == pytest.approx(matrix[q][k], abs=1e-3), (q, k)


def select_kind(driver, kind):
    """Chooses the attention kind and waits until both the tokens and the heatmap show it."""
    wait = redraw_wait(driver)

    def chosen(d):
        select = Select(d.find_element(By.ID, "kind-select"))
        if select.first_selected_option.get_attribute("value") != kind:
            select.select_by_value(kind)
        tokens = d.find_elements(By.CSS_SELECTOR, "svg.tokens")
        return (tokens and tokens[0].get_attribute("data-kind") == kind
                and d.find_elements(By.CSS_SELECTOR, "figure.matrix rect.cell"))

    wait.until(chosen)


def click_when_drawn(driver, selector):
    """Clicks the element matching `selector` once drawn, again if a redraw replaced it."""
    def clicked(d):
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    redraw_wait(driver).until(clicked)


def find_when_drawn(driver, selector):
    """The element matching `selector`, once the page has drawn it."""
    return WebDriverWait(driver, TIMEOUT).until(
        lambda d: (d.find_elements(By.CSS_SELECTOR, selector) or [None])[0])


def test_every_tab_of_the_readme_command_shows_data(driver, served, screenshot):
    url, _ = served
    deep = lambda host, selector: driver.execute_script(DEEP_QUERY, host, selector)  # noqa: E731

    wait = open_tab(driver, url, "scalars")
    wait.until(lambda d: len(deep("tf-scalar-dashboard", "tf-scalar-card")) >= 2)
    # A drawn curve: Plottable's line path with at least two points.
    wait.until(lambda d: any(
        (path.get_attribute("d") or "").count("L") >= 1
        for path in deep("tf-scalar-dashboard", "path.line")))
    screenshot("tab_scalars")

    wait = open_tab(driver, url, "images")
    wait.until(lambda d: any(
        image.get_property("naturalWidth") > 0 for image in deep("tf-image-dashboard", "img")))
    assert "attention_heatmaps/sentence_0/cross/layer_0" in driver.execute_script(DEEP_TEXT)
    screenshot("tab_images")

    # The latest translation of the training probe, as the Text tab must show it.
    (translation,) = [
        re.sub(r"<[^>]+>", "", datum["text"]).strip()
        for datum in get_json(url, "text/text", run="attention", tag="translation/probe_0")[-1:]
    ]
    wait = open_tab(driver, url, "text")
    wait.until(lambda d: "translation/probe_0" in d.execute_script(DEEP_TEXT))
    wait.until(lambda d: translation in d.execute_script(DEEP_TEXT))
    screenshot("tab_text")

    open_attention(driver, url)
    screenshot("tab_attention")


def test_model_view_click_focuses_a_head(driver, served, screenshot):
    url, _ = served
    open_attention(driver, url)
    select_kind(driver, "cross")
    run = Select(driver.find_element(By.ID, "run-select")).first_selected_option.text
    probe = Select(driver.find_element(By.ID, "sentence-select")).first_selected_option
    step = max(get_json(url, "attention/steps", run=run, probe=probe.get_attribute("value")))
    data = get_json(url, "attention/attention", run=run, probe=probe.get_attribute("value"),
                    step=step, kind="cross")
    layers, heads = data["num_layers"], data["num_heads"]

    # Every layer x head, plus the mean of each layer.
    thumbs = zip(texts(driver, "#model-view canvas.thumb:not(.mean)", "data-layer"),
                 texts(driver, "#model-view canvas.thumb:not(.mean)", "data-head"))
    assert sorted((int(layer), int(head)) for layer, head in thumbs) == [
        (i, h) for i in range(layers) for h in range(heads)]
    assert len(driver.find_elements(By.CSS_SELECTOR, "#model-view canvas.thumb.mean")) == layers
    # Readable at first: one heatmap, the mean over the heads of layer 0.
    assert texts(driver, "figure.matrix", "data-head") == ["mean"]
    mean = [[sum(data["weights"][0][h][q][k] for h in range(heads)) / heads
             for k in range(len(data["key_tokens"]))] for q in range(len(data["query_tokens"]))]
    assert_heatmap_is(driver, mean)

    layer, head = layers - 1, heads - 1
    click_when_drawn(driver, f"canvas.thumb[data-layer='{layer}'][data-head='{head}']")
    redraw_wait(driver).until(
        lambda d: d.find_element(By.ID, "focus-label").text == f"layer {layer}, head {head}")
    assert driver.find_element(
        By.CSS_SELECTOR, f"canvas.thumb[data-layer='{layer}'][data-head='{head}']"
    ).get_attribute("class").split() == ["thumb", "selected"]
    assert_heatmap_is(driver, data["weights"][layer][head])
    assert texts(driver, "svg.tokens g.head-lines", "data-head") == [str(head)]
    # The target column names what each decoder row predicts: the next token, then </s>.
    predicted = texts(driver, "svg.tokens g.token.query text.predicts")
    assert len(predicted) == len(data["query_tokens"])
    assert predicted[-1] == "</s>"
    screenshot("model_view_focused_head")

    # All heads only on request.
    driver.find_element(By.ID, "all-heads").click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure.matrix")) == heads
    driver.find_element(By.ID, "all-heads").click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure.matrix")) == 1


def test_hovering_a_cell_shows_its_value_and_highlights_its_tokens(driver, served, screenshot):
    url, _ = served
    open_attention(driver, url)
    select_kind(driver, "cross")
    q, k = 1, 2
    cell = find_when_drawn(driver, f"figure.matrix rect.cell[data-q='{q}'][data-k='{k}']")
    ActionChains(driver).move_to_element(cell).perform()
    tooltip = driver.find_element(By.ID, "tooltip")
    WebDriverWait(driver, TIMEOUT).until(lambda d: tooltip.is_displayed())
    assert tooltip.find_element(By.CLASS_NAME, "value").text == (
        f"{float(cell.get_attribute('data-weight')):.3f}")
    for side, index in (("query", q), ("key", k)):
        highlighted = texts(driver, f"svg.tokens g.token.{side}.highlight", "data-index")
        assert highlighted == [str(index)]
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure.matrix text.axis.highlight")) == 2
    screenshot("hover_cell")


def test_pieces_read_as_words_and_merge(driver, served):
    url, _ = served
    open_attention(driver, url)
    select_kind(driver, "encoder_self")
    raw = texts(driver, "svg.tokens g.token.key", "data-raw")
    assert any(piece.startswith(WORD_START) for piece in raw)  # The data do hold "▁".
    shown = driver.execute_script(
        "return document.body.innerText + [...document.querySelectorAll('svg text, option')]"
        ".map((node) => node.textContent).join(' ');")
    assert WORD_START not in shown

    driver.find_element(By.ID, "merge-words").click()
    words = texts(driver, "svg.tokens g.token.key")
    special = lambda piece: re.fullmatch(r"<[^<>\s]+>", piece)  # noqa: E731
    expected_words = sum(1 for i, piece in enumerate(raw) if i == 0 or piece.startswith(WORD_START)
                         or special(piece) or special(raw[i - 1]))
    assert len(words) == expected_words < len(raw)
    # A word gets the sum of its pieces' weights: rows still sum to 1.
    rows = {}
    for (row, _), weight in heatmap_weights(driver).items():
        rows[row] = rows.get(row, 0.0) + weight
    assert list(rows.values()) == pytest.approx([1.0] * len(words), abs=5e-3)
    driver.find_element(By.ID, "merge-words").click()


def test_step_slider_moves_through_training_steps(driver, served):
    url, _ = served
    open_attention(driver, url)
    probe = Select(driver.find_element(By.ID, "sentence-select")).first_selected_option
    steps = get_json(url, "attention/steps", run="attention", probe=probe.get_attribute("value"))
    assert len(steps) >= 2
    assert f"step {steps[-1]}" in driver.find_element(By.ID, "caption").text
    driver.find_element(By.ID, "step-slider").send_keys(Keys.ARROW_LEFT)
    redraw_wait(driver).until(
        lambda d: f"step {steps[-2]}" in d.find_element(By.ID, "caption").text)


def test_typed_sentence_box_returns_attention_for_a_new_sentence(driver, served, screenshot):
    url, export_dir = served
    open_attention(driver, url)
    assert export_dir in driver.find_element(By.ID, "export-dir").text
    box = driver.find_element(By.ID, "sentence-input")
    box.send_keys(TYPED_SENTENCE)
    driver.find_element(By.ID, "sentence-submit").click()
    expected = get_json(url, "attention/inspect", text=TYPED_SENTENCE, kind="encoder_self")
    redraw_wait(driver).until(
        lambda d: d.find_element(By.ID, "translation-text").text == expected["translation"])
    assert Select(driver.find_element(By.ID, "sentence-select")).first_selected_option.text == (
        f"typed: {TYPED_SENTENCE}")
    assert not driver.find_element(By.ID, "step-picker").is_displayed()
    source = driver.find_element(By.ID, "source-text").text
    assert source.lower() == TYPED_SENTENCE.lower()
    thumbs = texts(driver, "#model-view canvas.thumb:not(.mean)", "data-head")
    assert len(thumbs) == expected["num_layers"] * expected["num_heads"]

    select_kind(driver, "cross")
    expected = get_json(url, "attention/inspect", text=TYPED_SENTENCE, kind="cross")
    click_when_drawn(driver, "canvas.thumb[data-layer='0'][data-head='1']")
    redraw_wait(driver).until(
        lambda d: d.find_element(By.ID, "focus-label").text == "layer 0, head 1")
    assert_heatmap_is(driver, expected["weights"][0][1])
    screenshot("typed_sentence")


def test_follows_tensorboard_dark_mode(driver, served, screenshot):
    url, _ = served
    open_attention(driver, url)
    assert "dark" not in (driver.execute_script("return document.documentElement.className") or "")
    driver.switch_to.default_content()
    driver.execute_script("document.body.classList.add('dark-mode')")
    driver.switch_to.frame(driver.find_element(By.TAG_NAME, "iframe"))
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: "dark" in d.execute_script("return document.documentElement.className"))
    background = driver.execute_script(
        "return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(48, 48, 48)"
    screenshot("dark_mode")
