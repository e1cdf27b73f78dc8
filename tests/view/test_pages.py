"""The pages in a real headless chromium: each loads without console errors, a screenshot shows the
robot where it stands (pixels of the robot's colour there, and not once the robot is hidden), and
controls clicked in the page change what the server reports."""

import time

import numpy as np
import pytest
import torch
from browser import Browser, find_chromium
from view_builders import Player, checkpoint, view_store

from sonic_ray.view.motions_app import MotionsApp
from sonic_ray.view.policy_app import PolicyApp
from sonic_ray.view.replay import MotionStore, Poser
from sonic_ray.view.server import start_server, url_of
from sonic_ray.view.session import PolicySession, checkpoint_policies

pytestmark = pytest.mark.slow
ROBOT_REGION = (slice(200, 620), slice(480, 800))  # rows, columns of a 1280x800 page: the robot at the origin


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip(
            "no chromium: `make setup` installs Debian's chromium (as root); or set SONIC_RAY_CHROMIUM"
        )
    b = Browser(exe)
    yield b
    b.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return view_store(tmp_path_factory.mktemp("pages") / "v.parquet")


def robot_pixels(img: np.ndarray) -> int:
    """Pixels of the robot's blue (shaded) in the region where it stands."""
    r, g, b = (img[ROBOT_REGION][..., k].astype(int) for k in range(3))
    return int(((b > 120) & (b > r + 60) & (b > g + 20)).sum())


def open_app(browser, server, app):
    player = Player(server, app)
    page = browser.open(url_of(server, "127.0.0.1"))
    page.wait_for(
        "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Pause')",
        what="the control panel",
    )
    return player, page


def wait_for_robot(page, *, timeout=90.0) -> np.ndarray:
    deadline = time.time() + timeout
    while True:
        img = page.screenshot()
        if robot_pixels(img) > 1500 or time.time() > deadline:
            return img
        time.sleep(1.0)


def choose(page, handle, option: str) -> None:
    """Pick `option` in a viser dropdown (a Mantine select): open it as a mouse does, click the option."""
    page.eval(f"""(() => {{ const el = document.getElementById('{handle._impl.uuid}');
        el.dispatchEvent(new MouseEvent('mousedown', {{bubbles: true}})); el.click(); }})()""")
    visible = (
        f"[...document.querySelectorAll('[role=option]')].filter(o => o.offsetParent !== null && "
        f"o.innerText.trim() === '{option}')"
    )
    page.wait_for(f"{visible}.length > 0", what=f"option {option!r}")
    page.eval(f"{visible}[0].click()")


def type_into(page, handle, text: str) -> None:
    """Type `text` into a viser text input (found from its label, which names the handle's id)."""
    page.eval(f"""(() => {{ let n = document.querySelector('label[for="{handle._impl.uuid}"]');
        while (n && !n.querySelector('input')) n = n.parentElement;
        const el = n.querySelector('input');
        const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
        set.call(el, {text!r}); el.dispatchEvent(new Event('input', {{bubbles: true}})); }})()""")


def wait_status(app, key, value, timeout=30.0):
    deadline = time.time() + timeout
    while app.status()[key] != value:
        assert time.time() < deadline, f"server status {key} = {app.status()[key]!r}, expected {value!r}"
        time.sleep(0.1)


def check_robot_drawn(page, app, shot_path) -> None:
    img = wait_for_robot(page)
    from PIL import Image

    Image.fromarray(img).save(shot_path)
    assert robot_pixels(img) > 1500, f"no robot where it stands (screenshot: {shot_path})"
    app.robot.set_visible(False)
    time.sleep(1.5)
    assert robot_pixels(page.screenshot()) < 100, "robot-coloured pixels remain with the robot hidden"
    app.robot.set_visible(True)


def test_motions_page(browser, store, tmp_path):
    server = start_server("127.0.0.1", 0, title="test motions")
    app = MotionsApp(server, MotionStore(store), Poser("g1"), clip="sway0")
    player, page = open_app(browser, server, app)
    try:
        check_robot_drawn(page, app, tmp_path / "motions.png")
        assert app.status()["playing"]
        page.click_text("Pause")
        wait_status(app, "playing", False)
        frame = app.status()["frame"]
        time.sleep(0.5)
        assert app.status()["frame"] == frame
        type_into(page, app.search, "sway2")
        deadline = time.time() + 30
        while app.clip_list.options != ("sway0", "sway2"):  # the matches, and the clip shown now
            assert time.time() < deadline, app.clip_list.options
            time.sleep(0.1)
        choose(page, app.clip_list, "sway2")
        wait_status(app, "clip", "sway2")
        assert app.status()["frame"] == 0 and not app.status()["playing"]
        page.click_text("Play")
        wait_status(app, "playing", True)
        assert page.console_errors() == []
    finally:
        player.stop()


def test_policy_page(browser, store, tmp_path):
    torch.set_num_threads(1)
    policies, _ = checkpoint_policies(checkpoint(tmp_path, store))
    server = start_server("127.0.0.1", 0, title="test policy")
    app = PolicyApp(server, PolicySession(policies, store, clip="sway0"), title="test policy")
    player, page = open_app(browser, server, app)
    try:
        check_robot_drawn(page, app, tmp_path / "policy.png")
        page.click_text("Push")
        wait_status(app, "pushes", 1)
        choose(page, app.encoder, "teleop")
        wait_status(app, "encoder", "teleop")
        page.click_text("Pause")
        wait_status(app, "running", False)
        steps = app.status()["steps"]
        time.sleep(0.5)
        assert app.status()["steps"] == steps
        choose(page, app.clip_list, "sway1")
        wait_status(app, "clip", "sway1")
        assert app.status()["frame"] == 0
        assert page.console_errors() == []
    finally:
        player.stop()
