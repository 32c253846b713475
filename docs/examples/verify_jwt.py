#!/usr/bin/env python3
"""Verify a Task Management API token outside this project, with PyJWT and the public JWKS.

    pip install 'pyjwt[crypto]==2.10.1'
    python3 docs/examples/verify_jwt.py http://127.0.0.1:8080/auth/.well-known/jwks.json "$TOKEN"

The first argument is the JWKS URL: the front door's locally (`scripts/run.sh --jwt-alg RS256`
or `EdDSA`), the stack's `JwksUrl` output on AWS. Works for RS256 and EdDSA tokens (HS256 tokens
have no public key: the JWKS is empty in that mode). Prints the verified claims as JSON and
exits 0, or prints why the token was refused and exits 1.

What it checks, like the gateways: the key named by the token's `kid` from the JWKS, that key's
own algorithm only (never the token's word for it), the signature, `exp`/`nbf`/`iat` with a 5 s
leeway, `iss` = task-mgmt-auth and `aud` = task-mgmt-api.
"""

import json
import sys

import jwt

ISSUER = "task-mgmt-auth"
AUDIENCE = "task-mgmt-api"


def verify(jwks_url: str, token: str) -> dict:
    """The token's claims, or jwt.PyJWTError."""
    signing_key = jwt.PyJWKClient(jwks_url, cache_keys=True).get_signing_key_from_jwt(token)
    # The key's algorithm (its JWK "alg"), never the header's: no algorithm confusion.
    algorithm = signing_key.algorithm_name
    if algorithm not in ("RS256", "EdDSA"):
        raise jwt.InvalidAlgorithmError(f"key {signing_key.key_id} has algorithm {algorithm}")
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=[algorithm],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=5,
        options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
    )


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: " + __doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    try:
        claims = verify(argv[1], argv[2])
    except jwt.PyJWTError as e:
        print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
