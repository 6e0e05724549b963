import os

import pytest
import torch

# Two xdist workers share two cores: one intra-op thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by playwright (its own browser download is not reachable here).

    Skipped where chromium or playwright is missing, except under CI, where `make test` installs both and a
    missing browser is a set-up bug that must fail, not hide.
    """
    sync_api = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else None
    if sync_api is None:
        import playwright.sync_api as sync_api
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"chromium not found at {CHROMIUM}; `make browser` installs it")
        pytest.skip(f"chromium not found at {CHROMIUM}")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses to run as root with its sandbox
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records every request leaving 127.0.0.1 in ``page.external_requests``."""
    from urllib.parse import urlparse

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.external_requests = []

    def check(request):
        host = urlparse(request.url).hostname
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in ("127.0.0.1", "localhost"):
            page.external_requests.append(request.url)

    page.on("request", check)
    yield page
    context.close()
