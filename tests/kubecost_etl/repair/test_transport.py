"""DirectHttp refuses bad headers and plain-http credentials before any request, without echoing
a credential.
"""

from __future__ import annotations

import pytest
from kubecost_etl.errors import ConfigError, Refusal
from kubecost_etl.redact import redact
from kubecost_etl.repair.transport import DirectHttp

TOKEN = "tok-6Hn2Ke9QwR4tY7uI"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        (
            {"Authorization": f"Bearer {TOKEN}\nX-Injected: 1"},
            "the value of header 'Authorization' holds a line break",
        ),
        ({"Authorization": f"Bearer {TOKEN}\r"}, "the value of header 'Authorization' holds a line break"),
        ({"Authorization": f" Bearer {TOKEN}"}, "leading/trailing whitespace"),
        ({"X Bad Name": TOKEN}, "'X Bad Name' is not a valid header name"),
    ],
)
def test_bad_headers_are_a_config_error_that_never_shows_the_value(headers, problem):
    with pytest.raises(ConfigError) as refused:
        DirectHttp("https://kubecost.example.invalid", headers=headers)
    assert isinstance(refused.value, Refusal) and problem in str(refused.value)
    assert TOKEN not in str(refused.value)
    assert TOKEN not in redact(f"requests said: {headers}")  # registered: any later text hides it too


def test_credentials_over_plain_http_are_refused_unless_allowed():
    with pytest.raises(ConfigError, match="refusing to send credentials over plain http"):
        DirectHttp(
            "http://kubecost:9090", headers={"Authorization": f"Bearer {TOKEN}"}, allow_insecure_http=False
        )
    DirectHttp("http://kubecost:9090", headers={"Authorization": f"Bearer {TOKEN}"}, allow_insecure_http=True)
    DirectHttp("http://prometheus:9090", allow_insecure_http=False)  # no credentials: nothing to protect
