"""End-to-end check of the Attention dashboard in the real TensorBoard UI, in headless Chromium.

Writes attention summaries, starts `tensorboard --logdir` on loopback, opens the Attention tab
(TensorBoard loads the plugin's ES module in an iframe), finds the rendered tokens, hovers a
token and saves screenshots. Needs Debian's `chromium` and `chromium-driver` and the `e2e`
extra (selenium); `tests/e2e/run.sh` installs them and runs:

    pytest -m e2e tests/e2e

Screenshots go to $TFT_E2E_ARTIFACTS (default: a pytest temporary directory).
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tf_transformer.tensorboard import summaries

pytestmark = pytest.mark.e2e

try:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # Only `pytest -m e2e` needs it; the driver fixture says how to install.
    webdriver = None

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
    "--window-size=1500,1100",
)
TIMEOUT = 90

SOURCE = "▁The ▁animal ▁didn ' t ▁cross ▁the ▁street ▁because ▁it ▁was ▁too ▁tired .".split()
TARGET = "<s> ▁L ' animal ▁n ' a ▁pas ▁traversé ▁la ▁rue .".split()
IT, ANIMAL, TIRED = SOURCE.index("▁it"), SOURCE.index("▁animal"), SOURCE.index("▁tired")
NUM_LAYERS, NUM_HEADS = 2, 4


def softmax(scores):
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def illustrated_attention(seed=0):
    """Random attention, except that in layer 1 "it" attends to "animal" (head 0), "tired" (1)."""
    rng = np.random.default_rng(seed)
    sizes = {
        "encoder_self": (len(SOURCE), len(SOURCE)),
        "decoder_self": (len(TARGET), len(TARGET)),
        "cross": (len(TARGET), len(SOURCE)),
    }
    scores = {
        kind: rng.normal(size=(NUM_LAYERS, NUM_HEADS) + size) for kind, size in sizes.items()
    }
    scores["encoder_self"][1, 0, IT, ANIMAL] = 6.0
    scores["encoder_self"][1, 1, IT, TIRED] = 6.0
    causal = np.tril(np.ones((len(TARGET), len(TARGET)), dtype=bool))
    scores["decoder_self"] = np.where(causal, scores["decoder_self"], -np.inf)
    return {kind: softmax(value) for kind, value in scores.items()}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("e2e_logdir")
    with tf.summary.create_file_writer(str(logdir / "train")).as_default():
        for step in (1, 2):
            summaries.write_attention(
                step, "probe_0", SOURCE, TARGET, illustrated_attention(step),
                translation="L'animal n'a pas traversé la rue.", images=False,
            )
    return logdir


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tensorboard_url(logdir, tmp_path_factory):
    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    log = open(tmp_path_factory.mktemp("tensorboard") / "tensorboard.log", "w+")
    # Run outside the source tree so the installed package metadata (entry points) is used.
    process = subprocess.Popen(
        [tensorboard, "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(logdir),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(url + "/data/plugin/attention/runs") as response:
                    if response.read() != b"[]":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"TensorBoard did not serve attention data:\n{log.read()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if webdriver is None:
        pytest.fail("selenium is missing: pip install -e '.[e2e]' (tests/e2e/run.sh does).")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing; tests/e2e/run.sh installs chromium, chromium-driver.")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    directory = os.environ.get("TFT_E2E_ARTIFACTS") or str(tmp_path_factory.mktemp("e2e_artifacts"))
    os.makedirs(directory, exist_ok=True)
    return directory


def open_dashboard(driver, url):
    """Opens the Attention tab and switches into the plugin's iframe once tokens are drawn."""
    driver.get(url + "/#attention")
    wait = WebDriverWait(driver, TIMEOUT)
    wait.until(expected_conditions.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.tokens g.token text"))
    return wait


def token_texts(driver, side):
    return [element.text for element in
            driver.find_elements(By.CSS_SELECTOR, f"svg.tokens g.token.{side} text")]


def test_attention_tab_renders_tokens_and_hover(driver, tensorboard_url, artifacts):
    wait = open_dashboard(driver, tensorboard_url)

    # Defaults: latest step, first probe, encoder self-attention, all heads.
    assert Select(driver.find_element(By.ID, "step-select")).first_selected_option.text == "2"
    assert token_texts(driver, "query") == SOURCE
    assert token_texts(driver, "key") == SOURCE
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure.matrix")) == NUM_HEADS

    Select(driver.find_element(By.ID, "layer-select")).select_by_value("1")
    for head in range(2, NUM_HEADS):  # Keep heads 0 and 1.
        driver.find_element(By.CSS_SELECTOR, f"input[data-head='{head}']").click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "figure.matrix")) == 2

    it_token = driver.find_elements(By.CSS_SELECTOR, "svg.tokens g.token.query")[IT]
    ActionChains(driver).move_to_element(it_token).perform()
    token_svg = driver.find_element(By.CSS_SELECTOR, "svg.tokens")
    wait.until(lambda d: "focus" in token_svg.get_attribute("class"))
    active = driver.find_elements(By.CSS_SELECTOR, "svg.tokens line.active")
    assert active and {line.get_attribute("data-q") for line in active} == {str(IT)}
    # The strongest line of head 0 goes to "animal", of head 1 to "tired".
    for head, expected in ((0, ANIMAL), (1, TIRED)):
        lines = driver.find_elements(By.CSS_SELECTOR, f"g[data-head='{head}'] line.active")
        strongest = max(lines, key=lambda line: float(line.get_attribute("stroke-opacity")))
        assert strongest.get_attribute("data-k") == str(expected)

    driver.switch_to.default_content()
    driver.save_screenshot(os.path.join(artifacts, "attention_encoder_self_hover.png"))


def test_cross_attention_shows_target_against_source(driver, tensorboard_url, artifacts):
    open_dashboard(driver, tensorboard_url)

    Select(driver.find_element(By.ID, "kind-select")).select_by_value("cross")
    WebDriverWait(driver, TIMEOUT).until(lambda d: token_texts(d, "query") == TARGET)
    assert token_texts(driver, "key") == SOURCE
    caption = driver.find_element(By.ID, "caption").text
    assert "▁traversé" in caption

    # Move the pointer off the tokens so the screenshot shows every line.
    ActionChains(driver).move_to_element(driver.find_element(By.ID, "caption")).perform()
    driver.switch_to.default_content()
    driver.save_screenshot(os.path.join(artifacts, "attention_cross.png"))
