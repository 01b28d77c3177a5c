"""Authentication for `ipl serve`, the LangGraph way: langgraph.json `auth` points at `auth` here.

With a token (`ipl serve --token`, or IPL_TOKEN), every request but the seller page's own HTML and
the health check must carry `Authorization: Bearer <token>`, else 401. Without one it lets every
request in (loopback only: `ipl serve` refuses another host without a token). Either way nobody may
create or change assistants: an assistant's stored configuration would sit under every run of it.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from langgraph_sdk import Auth

from ipl_graph.face.serve import TOKEN_ENV

PUBLIC = {"/ipl", "/ipl/", "/ok"}  # the page holds no data; it asks for the token itself
SELLER: Auth.types.MinimalUserDict = {"identity": "seller", "permissions": []}

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None, path: str, method: str) -> Auth.types.MinimalUserDict:
    token = os.environ.get(TOKEN_ENV, "")
    if not token or (method == "GET" and path in PUBLIC):
        return SELLER
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Auth.exceptions.HTTPException(status_code=401, detail="this server needs its access token"
                                                                    " (Authorization: Bearer TOKEN)")
    return SELLER


@auth.on(resources="assistants", actions=["create", "update", "delete"])
async def no_assistant_changes(ctx: Auth.types.AuthContext, value: Any) -> bool:
    return False


@auth.on
async def one_seller(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Everything else: the token holder is the one user, so there is no ownership to check."""
    return True
