"""Authorizers for the auth tests, importable by a `jupyter server` subprocess
(``--ServerApp.authorizer_class=tests.authorizers.DenyJobctl``, the repository root on
``PYTHONPATH``)."""

from __future__ import annotations

from jupyter_server.auth.authorizer import Authorizer


class DenyJobctl(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        return resource != "jobctl"


class AsyncDenyJobctl(Authorizer):
    async def is_authorized(self, handler, user, action, resource):
        return resource != "jobctl"


class ReadOnly(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        return resource != "jobctl" or action == "read"
