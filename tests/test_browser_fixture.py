"""The shared browser fixture: a local page loads, and a request to another host is recorded."""


def test_local_page_and_external_request_recorded(page):
    page.set_content("<h1 id='t'>cnnlab</h1><img src='http://example.invalid/x.png'>")
    assert page.inner_text("#t") == "cnnlab"
    page.wait_for_timeout(200)
    assert any("example.invalid" in u for u in page.external_requests)
